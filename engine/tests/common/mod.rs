//! Helpers of the engine's integration tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use argon_client::{SubmitOptions, WorkflowAdmin};
use argon_crds::manifest::Manifest;
use argon_crds::workflow::{NodeStatus, Workflow, WorkflowPhase};
use argon_engine::{Engine, EngineConfig};

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub engine: Arc<Engine>,
}

/// The repository's root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// An engine on a fresh state dir, with a stand-in `cowsay` on its PATH
/// (the whalesay image's command, which this machine does not have) and
/// `python` for Debian's `python3`.
pub fn harness() -> Harness {
    harness_with(|_| {})
}

pub fn harness_with(f: impl FnOnce(&mut EngineConfig)) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let cowsay = bin.join("cowsay");
    std::fs::write(&cowsay, "#!/bin/sh\necho \"< $* >\"\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&cowsay, std::fs::Permissions::from_mode(0o755)).unwrap();
    // Upstream's script examples call `python`; Debian has `python3`.
    std::os::unix::fs::symlink("/usr/bin/python3", bin.join("python")).unwrap();
    let mut config = EngineConfig::new(dir.path().join("state"));
    config.extra_path = vec![bin];
    // Deterministic: the sandbox, whatever runtime this machine has (the
    // container executor has tests of its own).
    config.executor = argon_engine::ExecutorChoice::Sandbox;
    f(&mut config);
    let engine = Engine::open(config).unwrap();
    Harness { dir, engine }
}

/// The manifests of a file under examples/workflows/.
pub fn example(name: &str) -> Vec<Manifest> {
    let path = repo_root().join("examples/workflows").join(name);
    let report = argon_crds::manifest::load_paths(&[path]);
    assert!(!report.has_errors(), "{:?}", report.diagnostics);
    report.manifests.into_iter().map(|l| l.manifest).collect()
}

/// Manifests from YAML text.
pub fn manifests(text: &str) -> Vec<Manifest> {
    let mut report = argon_crds::manifest::LoadReport::default();
    argon_crds::manifest::load_text("test.yaml", text, &mut report);
    assert!(!report.has_errors(), "{:?}", report.diagnostics);
    report.manifests.into_iter().map(|l| l.manifest).collect()
}

pub fn workflow_of(ms: Vec<Manifest>) -> Workflow {
    ms.into_iter()
        .find_map(|m| match m {
            Manifest::Workflow(w) => Some(*w),
            _ => None,
        })
        .expect("a Workflow")
}

/// Stores the WorkflowTemplates of an example file.
/// A Workflow named `PREFIX` + random letters whose spec is `body` (YAML, indented two spaces).
pub fn workflow_with_spec(prefix: &str, body: &str) -> Workflow {
    workflow_of(manifests(&format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata:\n  generateName: {prefix}\nspec:\n{body}"
    )))
}

pub async fn store_templates(engine: &Engine, file: &str) {
    for m in example(file) {
        let doc = match m {
            Manifest::WorkflowTemplate(t) => serde_json::to_value(*t).unwrap(),
            Manifest::ClusterWorkflowTemplate(t) => serde_json::to_value(*t).unwrap(),
            Manifest::CronWorkflow(t) => serde_json::to_value(*t).unwrap(),
            _ => continue,
        };
        WorkflowAdmin::put_template(engine, "", doc).await.unwrap();
    }
}

pub async fn submit(engine: &Engine, wf: Workflow, params: &[(&str, &str)]) -> (String, String) {
    let s = engine
        .submit_workflow(
            "",
            wf,
            SubmitOptions {
                parameters: params.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
                ..Default::default()
            },
        )
        .unwrap();
    (s.namespace, s.name)
}

/// Waits until the workflow completes (60 s at most); returns it.
pub async fn wait_done(engine: &Engine, ns: &str, name: &str) -> Workflow {
    wait_until(engine, ns, name, Duration::from_secs(90), |w| {
        phase(w).is_some_and(|p| p.is_completed())
    })
    .await
}

/// Waits until `f` holds for the workflow.
pub async fn wait_until(
    engine: &Engine,
    ns: &str,
    name: &str,
    limit: Duration,
    f: impl Fn(&Workflow) -> bool,
) -> Workflow {
    let deadline = Instant::now() + limit;
    loop {
        let wf = engine.watch(ns, name, Duration::from_millis(500)).await.unwrap();
        if f(&wf) {
            return wf;
        }
        assert!(
            Instant::now() < deadline,
            "workflow {name} did not get there in time: {}",
            dump(&wf)
        );
    }
}

pub async fn run(engine: &Engine, wf: Workflow, params: &[(&str, &str)]) -> Workflow {
    let (ns, name) = submit(engine, wf, params).await;
    wait_done(engine, &ns, &name).await
}

pub fn phase(wf: &Workflow) -> Option<WorkflowPhase> {
    wf.status.as_ref().and_then(|s| s.phase)
}

pub fn message(wf: &Workflow) -> String {
    wf.status.as_ref().and_then(|s| s.message.clone()).unwrap_or_default()
}

/// The nodes whose display name is `display`.
pub fn nodes<'a>(wf: &'a Workflow, display: &str) -> Vec<&'a NodeStatus> {
    wf.status
        .as_ref()
        .map(|s| {
            s.nodes
                .values()
                .filter(|n| n.display_name.as_deref() == Some(display))
                .collect()
        })
        .unwrap_or_default()
}

/// The one node whose display name is `display`.
pub fn node<'a>(wf: &'a Workflow, display: &str) -> &'a NodeStatus {
    let found = nodes(wf, display);
    assert_eq!(found.len(), 1, "one node '{display}' expected in {}", dump(wf));
    found[0]
}

pub fn result(n: &NodeStatus) -> String {
    n.outputs.as_ref().and_then(|o| o.result.clone()).unwrap_or_default()
}

pub fn dump(wf: &Workflow) -> String {
    serde_json::to_string_pretty(&wf.status).unwrap()
}
