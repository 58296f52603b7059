//! `argon controller --dry-run` as a process: the objects of the seed
//! example, and `file:line:col` errors for a bad manifest.

use std::process::Command;

fn argon() -> Command {
    Command::new(env!("CARGO_BIN_EXE_argon"))
}

fn example() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/webhook")
}

#[test]
fn dry_run_prints_the_objects_of_the_seed_example() {
    let out = argon()
        .args(["controller", "--dry-run", "--image", "registry.example/argon:1"])
        .arg(example())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let docs: Vec<serde_json::Value> = stdout
        .split("---\n")
        .filter(|d| !d.trim().is_empty())
        .map(|d| serde_norway::from_str(d).unwrap())
        .collect();
    let objects: Vec<(&str, &str, &str)> = docs
        .iter()
        .map(|d| {
            (
                d["kind"].as_str().unwrap(),
                d["metadata"]["name"].as_str().unwrap(),
                d["metadata"]["namespace"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        objects,
        [
            ("ConfigMap", "eventbus-default-js-config", "argon"),
            ("StatefulSet", "eventbus-default-js", "argon"),
            ("Service", "eventbus-default-js-svc", "argon"),
            ("ConfigMap", "webhook-eventsource-manifest", "argon"),
            ("Deployment", "webhook-eventsource", "argon"),
            ("Service", "webhook-eventsource-svc", "argon"),
            ("ConfigMap", "webhook-sensor-manifest", "argon"),
            ("Deployment", "webhook-sensor", "argon"),
        ]
    );
    let deployment = &docs[4]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(deployment["image"], "registry.example/argon:1");
    assert_eq!(deployment["args"][4], "nats://eventbus-default-js-svc.argon.svc:4222");
    assert_eq!(docs[5]["spec"]["ports"][0]["port"], 12000);
    // The bus is among the manifests: nothing assumed; the template is not the controller's.
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("note: ")).collect::<Vec<_>>(),
        [
            "note: WorkflowTemplate hello: the controller does not run it (argon apply or argon submit sends it to argon server)"
        ],
        "{stderr}"
    );
}

#[test]
fn dry_run_reports_manifest_errors_with_their_position() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("es.yaml");
    std::fs::write(
        &file,
        "apiVersion: argoproj.io/v1alpha1\nkind: EventSource\nmetadata: {name: w}\nspec:\n  webhook:\n    e: {port: '1', endpoint: /e, methd: POST}\n",
    )
    .unwrap();
    let out = argon().args(["controller", "--dry-run"]).arg(&file).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert!(stderr.contains(&format!("{}:6:", file.display())), "{stderr}");
    assert!(stderr.contains("methd"), "{stderr}");
}

#[test]
fn paths_without_dry_run_are_refused() {
    let out = argon().arg("controller").arg(example()).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("only with --dry-run"), "{stderr}");
}

#[test]
fn without_a_cluster_the_controller_says_so() {
    let home = tempfile::tempdir().unwrap();
    let out = argon()
        .args(["controller", "--metrics-addr", "127.0.0.1:0"])
        .env("HOME", home.path())
        .env("KUBECONFIG", home.path().join("no-such-kubeconfig"))
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env_remove("KUBERNETES_SERVICE_PORT")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no Kubernetes API configured"), "{stderr}");
}

#[test]
fn an_unknown_pull_policy_is_refused() {
    let out = argon()
        .args(["controller", "--image-pull-policy", "Sometimes", "--dry-run"])
        .arg(example())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("IfNotPresent"), "{stderr}");
}
