//! The install files of deploy/: every plain manifest parses into its
//! k8s-openapi type and back without losing a field, the kustomization lists
//! every one of them, the chart carries the generated CRDs, and the seed
//! example is what the controller accepts.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, PersistentVolumeClaim, Secret, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::Deserialize as _;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

/// The documents of a multi-document YAML file.
fn documents(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .filter(|v| !v.is_null())
        .collect()
}

/// Parses `doc` as `T` and checks that writing it back gives the same
/// document: a misspelt or misplaced field would be dropped by the type.
fn round_trip<T: DeserializeOwned + Serialize>(doc: &Value, origin: &str) {
    let typed: T = serde_json::from_value(doc.clone()).unwrap_or_else(|e| panic!("{origin}: {e}"));
    let back = serde_json::to_value(&typed).unwrap();
    if let Some(at) = difference(doc, &back, String::new()) {
        panic!("{origin}: the Kubernetes type does not keep {at} (a field it does not know?)");
    }
}

/// The first path where `a` and `b` differ.
fn difference(a: &Value, b: &Value, path: String) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => x
            .iter()
            .find_map(|(k, v)| match y.get(k) {
                Some(w) => difference(v, w, format!("{path}.{k}")),
                None => Some(format!("{path}.{k}")),
            })
            .or_else(|| {
                y.keys()
                    .find(|k| !x.contains_key(*k))
                    .map(|k| format!("{path}.{k} (added)"))
            }),
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (v, w))| difference(v, w, format!("{path}[{i}]"))),
        // kubectl writes the CRDs' `minimum: 0.0` as `0`.
        (Value::Number(x), Value::Number(y)) if x.as_f64() == y.as_f64() => None,
        _ if a == b => None,
        _ => Some(format!("{path} ({a} became {b})")),
    }
}

fn check(doc: &Value, origin: &str) {
    let api_version = doc["apiVersion"].as_str().unwrap_or_default();
    let kind = doc["kind"].as_str().unwrap_or_default();
    match (api_version, kind) {
        ("v1", "Namespace") => round_trip::<Namespace>(doc, origin),
        ("v1", "ServiceAccount") => round_trip::<ServiceAccount>(doc, origin),
        ("v1", "Service") => round_trip::<Service>(doc, origin),
        ("v1", "ConfigMap") => round_trip::<ConfigMap>(doc, origin),
        ("v1", "Secret") => round_trip::<Secret>(doc, origin),
        ("v1", "PersistentVolumeClaim") => round_trip::<PersistentVolumeClaim>(doc, origin),
        ("apps/v1", "Deployment") => round_trip::<Deployment>(doc, origin),
        ("apps/v1", "StatefulSet") => round_trip::<StatefulSet>(doc, origin),
        ("rbac.authorization.k8s.io/v1", "ClusterRole") => round_trip::<ClusterRole>(doc, origin),
        ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => round_trip::<ClusterRoleBinding>(doc, origin),
        ("rbac.authorization.k8s.io/v1", "Role") => round_trip::<Role>(doc, origin),
        ("rbac.authorization.k8s.io/v1", "RoleBinding") => round_trip::<RoleBinding>(doc, origin),
        ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => round_trip::<CustomResourceDefinition>(doc, origin),
        other => panic!("{origin}: no Kubernetes type for {other:?}; add it to this test"),
    }
}

fn plain_manifests() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(deploy().join("kubernetes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

#[test]
fn every_plain_manifest_parses_into_kubernetes_types() {
    let files = plain_manifests();
    assert!(files.len() >= 5, "{files:?}");
    let mut kinds = BTreeSet::new();
    for file in files {
        assert_eq!(
            file.extension().and_then(|e| e.to_str()),
            Some("yaml"),
            "{}",
            file.display()
        );
        let docs = documents(&file);
        assert!(!docs.is_empty(), "{} is empty", file.display());
        for (i, doc) in docs.iter().enumerate() {
            check(doc, &format!("{} document {i}", file.display()));
            kinds.insert(doc["kind"].as_str().unwrap().to_string());
        }
    }
    for kind in [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Deployment",
        "Service",
    ] {
        assert!(kinds.contains(kind), "no {kind} among the plain manifests");
    }
}

#[test]
fn the_kustomization_lists_every_plain_manifest_and_the_crds() {
    let docs = documents(&deploy().join("kustomization.yaml"));
    let listed: BTreeSet<String> = docs[0]["resources"]
        .as_array()
        .expect("resources")
        .iter()
        .map(|r| r.as_str().unwrap().to_string())
        .collect();
    let mut expected: BTreeSet<String> = plain_manifests()
        .iter()
        .map(|p| format!("kubernetes/{}", p.file_name().unwrap().to_str().unwrap()))
        .collect();
    expected.insert("crds/argon-crds.yaml".to_string());
    assert_eq!(listed, expected);
    for doc in documents(&deploy().join("crds/argon-crds.yaml")) {
        check(&doc, "deploy/crds/argon-crds.yaml");
    }
}

#[test]
fn the_controller_may_do_what_it_does_and_no_more() {
    let docs = documents(&deploy().join("kubernetes/rbac.yaml"));
    let role: ClusterRole = serde_json::from_value(docs[0].clone()).unwrap();
    let rules = role.rules.unwrap();
    let resources: BTreeSet<String> = rules
        .iter()
        .flat_map(|r| r.resources.clone().unwrap_or_default())
        .collect();
    assert!(!resources.contains("secrets"), "the controller never reads Secrets");
    assert!(!resources.contains("*"));
    for rule in &rules {
        assert!(!rule.verbs.contains(&"*".to_string()), "{rule:?}");
    }
    for needed in [
        "eventsources",
        "sensors/status",
        "eventbus/finalizers",
        "deployments",
        "statefulsets",
        "services",
        "configmaps",
    ] {
        assert!(resources.contains(needed), "no rule for {needed}");
    }
}

#[test]
fn the_server_may_run_step_pods_and_nothing_more() {
    let docs = documents(&deploy().join("kubernetes/rbac.yaml"));
    let role = docs
        .iter()
        .find(|d| d["kind"] == "Role" && d["metadata"]["name"] == "argon-server")
        .expect("a Role for argon-server");
    let role: Role = serde_json::from_value(role.clone()).unwrap();
    let rights: BTreeSet<(String, String)> = role
        .rules
        .unwrap()
        .iter()
        .flat_map(|r| {
            let verbs = r.verbs.clone();
            r.resources
                .clone()
                .unwrap_or_default()
                .into_iter()
                .flat_map(move |res| verbs.clone().into_iter().map(move |v| (res.clone(), v)))
        })
        .collect();
    // Exactly what the kubernetes executor calls: create and watch step
    // pods, read one, delete it (podGC, stop), follow its log.
    let want: BTreeSet<(String, String)> = [
        ("pods", "get"),
        ("pods", "list"),
        ("pods", "watch"),
        ("pods", "create"),
        ("pods", "delete"),
        ("pods/log", "get"),
    ]
    .iter()
    .map(|(r, v)| (r.to_string(), v.to_string()))
    .collect();
    assert_eq!(rights, want);
    let binding = docs
        .iter()
        .find(|d| d["kind"] == "RoleBinding" && d["metadata"]["name"] == "argon-server")
        .expect("a RoleBinding for argon-server");
    assert_eq!(binding["subjects"][0]["name"], "argon-server");

    let server = documents(&deploy().join("kubernetes/server.yaml"));
    let deployment = server.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let pod = &deployment["spec"]["template"]["spec"];
    assert_eq!(
        pod["automountServiceAccountToken"], true,
        "the executor talks to the API server"
    );
    let args: Vec<&str> = pod["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a.as_str())
        .collect();
    assert!(args.contains(&"--executor=kubernetes"), "{args:?}");
    let service = server.iter().find(|d| d["kind"] == "Service").unwrap();
    let callback = format!(
        "--callback-url=http://{}.argon.svc:{}",
        service["metadata"]["name"].as_str().unwrap(),
        service["spec"]["ports"][0]["port"]
    );
    assert!(
        args.contains(&callback.as_str()),
        "{args:?} should call back at {callback}"
    );
}

#[test]
fn kubectl_kustomize_renders_the_plain_install_when_kubectl_is_here() {
    let Ok(out) = std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(deploy())
        .output()
    else {
        eprintln!("kubectl is not installed: the kustomization is checked by the other tests only");
        return;
    };
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let docs: Vec<Value> = serde_norway::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap())
        .collect();
    for (i, doc) in docs.iter().enumerate() {
        check(doc, &format!("kubectl kustomize document {i}"));
    }
    assert!(
        docs.iter()
            .any(|d| d["metadata"]["name"] == "argon-controller" && d["kind"] == "Deployment")
    );
}

#[test]
fn the_chart_carries_the_generated_crds_and_reads_as_a_chart() {
    let chart = deploy().join("chart/argon");
    let crds = std::fs::read_to_string(chart.join("crds/argon-crds.yaml")).unwrap();
    assert!(
        crds == argon_crds::crd::yaml(),
        "deploy/chart/argon/crds/argon-crds.yaml is stale: copy deploy/crds/argon-crds.yaml there"
    );
    let meta = &documents(&chart.join("Chart.yaml"))[0];
    assert_eq!(meta["apiVersion"], "v2");
    assert_eq!(meta["name"], "argon");
    assert_eq!(meta["appVersion"], env!("CARGO_PKG_VERSION"));
    let values = &documents(&chart.join("values.yaml"))[0];
    for key in ["image", "controller", "server", "jetstream"] {
        assert!(values.get(key).is_some(), "values.yaml has no {key}");
    }
    for template in [
        "controller.yaml",
        "rbac.yaml",
        "server.yaml",
        "eventbus.yaml",
        "serviceaccounts.yaml",
    ] {
        assert!(
            chart.join("templates").join(template).is_file(),
            "no template {template}"
        );
    }
}

#[test]
fn the_image_is_built_in_two_stages_and_runs_as_a_non_root_user() {
    let text = std::fs::read_to_string(deploy().join("Dockerfile")).unwrap();
    let stages = text.lines().filter(|l| l.starts_with("FROM ")).count();
    assert_eq!(stages, 2, "a builder stage and a runtime stage");
    assert!(text.contains("--locked -p argon"));
    assert!(text.lines().any(|l| l.trim() == "USER 65532:65532"));
    // Static, so `argon emissary` runs in any step image the kubernetes executor copies it into.
    assert!(
        text.contains("unknown-linux-musl"),
        "argon is built as a static musl binary"
    );
}

#[test]
fn the_seed_example_lints_clean_and_plans_its_objects() {
    let example = deploy().join("examples/webhook");
    let report = argon_crds::lint::lint_paths(std::slice::from_ref(&example));
    assert!(!report.has_errors(), "{:?}", report.diagnostics);
    let kinds: BTreeSet<&str> = report.manifests.iter().map(|l| l.manifest.kind()).collect();
    assert_eq!(
        kinds,
        BTreeSet::from(["EventBus", "EventSource", "Sensor", "WorkflowTemplate"])
    );
    let manifests: Vec<_> = report.manifests.into_iter().map(|l| l.manifest).collect();
    let plan = argon_controller::dryrun::plan(&manifests, "default", &argon_controller::Settings::default()).unwrap();
    assert_eq!(
        plan.notes,
        [
            "WorkflowTemplate hello: the controller does not run it (argon apply or argon submit sends it to argon server)"
        ]
    );
    for child in &plan.children {
        let doc: Value = serde_norway::from_str(&child.to_yaml().unwrap()).unwrap();
        check(&doc, &format!("planned {} {}", child.kind(), child.name()));
    }
}
