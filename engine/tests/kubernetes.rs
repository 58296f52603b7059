//! The kubernetes executor against a scripted cluster: kube's client over
//! tower-test's mock service, answering as an API server with a kubelet
//! would (no Kubernetes API server can run here). The "kubelet" runs each
//! pod's emissary for real: `emissary::init` fetches the step's inputs from
//! the engine's API, and `emissary::run_with` runs the main command as a
//! host process and sends the outcome and outputs back through the same
//! routes a pod uses. So the pod specs, the watch, the log API, the
//! transfers and podGC are all exercised; only the container isolation is
//! not (the container executor's tests cover that).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon_crds::workflow::{NodePhase, WorkflowPhase};
use argon_engine::executor::kubernetes::{Settings, emissary};
use argon_engine::{Engine, EngineConfig, ExecutorChoice, ExecutorKind};
use common::*;
use http::{Method, Request, Response};
use k8s_openapi::api::core::v1::{ContainerState, ContainerStatus, Pod, PodStatus};
use kube::client::Body;
use serde_json::{Value, json};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// The scripted cluster: pods, their watch events and their logs.
#[derive(Default)]
struct Cluster {
    pods: BTreeMap<String, Pod>,
    /// (resource version, event type, pod).
    events: Vec<(u64, &'static str, Pod)>,
    version: u64,
    /// Every pod as it was created.
    created: Vec<Pod>,
    deleted: Vec<String>,
    /// Main container log lines by pod.
    logs: HashMap<String, Vec<String>>,
}

#[derive(Clone)]
struct Fake {
    state: Arc<Mutex<Cluster>>,
    changed: Arc<tokio::sync::watch::Sender<u64>>,
    dir: PathBuf,
}

fn response(status: u16, value: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(value).unwrap()))
        .unwrap()
}

fn not_found(name: &str) -> Response<Body> {
    response(
        404,
        &json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": format!("pods \"{name}\" not found"), "reason": "NotFound", "code": 404}),
    )
}

fn query(req: &Request<Body>) -> HashMap<String, String> {
    req.uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), percent_decode(v)))
        .collect()
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(if bytes[i] == b'+' { b' ' } else { bytes[i] });
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

fn matches_selector(pod: &Pod, selector: Option<&String>) -> bool {
    let labels = pod.metadata.labels.clone().unwrap_or_default();
    selector.is_none_or(|s| {
        s.split(',')
            .filter(|p| !p.is_empty())
            .all(|pair| match pair.split_once('=') {
                Some((k, v)) => labels.get(k).map(String::as_str) == Some(v),
                None => false,
            })
    })
}

impl Fake {
    fn new(dir: &Path) -> Fake {
        Fake {
            state: Arc::default(),
            changed: Arc::new(tokio::sync::watch::channel(0).0),
            dir: dir.to_path_buf(),
        }
    }

    /// Records a change of a pod for the watch.
    fn put(&self, kind: &'static str, mut pod: Pod) {
        let mut s = self.state.lock().unwrap();
        s.version += 1;
        pod.metadata.resource_version = Some(s.version.to_string());
        let name = pod.metadata.name.clone().unwrap();
        let v = s.version;
        s.events.push((v, kind, pod.clone()));
        if kind == "DELETED" {
            s.pods.remove(&name);
        } else {
            s.pods.insert(name, pod);
        }
        drop(s);
        self.changed.send_modify(|x| *x += 1);
    }

    fn update(&self, name: &str, f: impl FnOnce(&mut PodStatus)) {
        let Some(mut pod) = self.state.lock().unwrap().pods.get(name).cloned() else {
            return;
        };
        f(pod.status.get_or_insert_with(Default::default));
        self.put("MODIFIED", pod);
    }

    /// Answers the client's requests until the handle closes.
    async fn serve(self, mut handle: Handle) {
        while let Some((req, send)) = handle.next_request().await {
            let fake = self.clone();
            tokio::spawn(async move { send.send_response(fake.answer(req).await) });
        }
    }

    async fn answer(&self, req: Request<Body>) -> Response<Body> {
        let method = req.method().clone();
        let path = req.uri().path().to_string();
        let q = query(&req);
        let body = req.into_body().collect_bytes().await.unwrap();
        let rest = path
            .strip_prefix("/api/v1/namespaces/argon/pods")
            .unwrap_or_else(|| panic!("unexpected request {method} {path}"));
        let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
        match (method, parts.as_slice()) {
            (Method::POST, []) => {
                let mut pod: Pod = serde_json::from_slice(&body).unwrap();
                let name = pod.metadata.name.clone().unwrap();
                if self.state.lock().unwrap().pods.contains_key(&name) {
                    return response(
                        409,
                        &json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "metadata": {},
                                "message": "already exists", "reason": "AlreadyExists", "code": 409}),
                    );
                }
                self.state.lock().unwrap().created.push(pod.clone());
                pod.metadata.uid = Some(uuid::Uuid::new_v4().to_string());
                pod.status = Some(PodStatus {
                    phase: Some("Pending".into()),
                    ..Default::default()
                });
                self.put("ADDED", pod.clone());
                tokio::spawn(self.clone().kubelet(name.clone()));
                response(
                    201,
                    &serde_json::to_value(self.state.lock().unwrap().pods[&name].clone()).unwrap(),
                )
            }
            (Method::GET, []) if q.get("watch").is_some_and(|w| w == "true") => {
                let since: u64 = q.get("resourceVersion").and_then(|v| v.parse().ok()).unwrap_or(0);
                let mut changed = self.changed.subscribe();
                let _ = tokio::time::timeout(Duration::from_secs(2), async {
                    loop {
                        if self.state.lock().unwrap().events.iter().any(|(v, ..)| *v > since) {
                            return;
                        }
                        changed.changed().await.unwrap();
                    }
                })
                .await;
                let s = self.state.lock().unwrap();
                let mut text = String::new();
                for (v, kind, pod) in &s.events {
                    if *v > since && matches_selector(pod, q.get("labelSelector")) {
                        text.push_str(&json!({"type": kind, "object": pod}).to_string());
                        text.push('\n');
                    }
                }
                Response::builder()
                    .status(200)
                    .body(Body::from(text.into_bytes()))
                    .unwrap()
            }
            (Method::GET, []) => {
                let s = self.state.lock().unwrap();
                let items: Vec<&Pod> = s
                    .pods
                    .values()
                    .filter(|p| matches_selector(p, q.get("labelSelector")))
                    .collect();
                response(
                    200,
                    &json!({"apiVersion": "v1", "kind": "PodList",
                            "metadata": {"resourceVersion": s.version.to_string()}, "items": items}),
                )
            }
            (Method::GET, [name]) => match self.state.lock().unwrap().pods.get(*name) {
                Some(p) => response(200, &serde_json::to_value(p).unwrap()),
                None => not_found(name),
            },
            (Method::DELETE, [name]) => {
                let pod = self.state.lock().unwrap().pods.get(*name).cloned();
                match pod {
                    Some(p) => {
                        self.state.lock().unwrap().deleted.push(name.to_string());
                        self.put("DELETED", p.clone());
                        response(200, &serde_json::to_value(p).unwrap())
                    }
                    None => not_found(name),
                }
            }
            (Method::GET, [name, "log"]) => {
                // Followed logs end when the container does: answered then, whole.
                let name = name.to_string();
                let mut changed = self.changed.subscribe();
                loop {
                    let done = self.state.lock().unwrap().pods.get(&name).is_none_or(|p| {
                        main_of(p).is_some_and(|c| c.state.as_ref().is_some_and(|s| s.terminated.is_some()))
                    });
                    if done {
                        break;
                    }
                    changed.changed().await.unwrap();
                }
                let lines = self.state.lock().unwrap().logs.get(&name).cloned().unwrap_or_default();
                let text: String = lines
                    .iter()
                    .enumerate()
                    .map(|(i, l)| format!("2026-12-07T00:00:00.{:09}Z {l}\n", i + 1))
                    .collect();
                Response::builder()
                    .status(200)
                    .body(Body::from(text.into_bytes()))
                    .unwrap()
            }
            (m, p) => panic!("unexpected request {m} {p:?}"),
        }
    }

    /// Runs a pod as a kubelet would: its `init` emissary, then its main
    /// command under `emissary run`, with the shared folder in a temp dir.
    async fn kubelet(self, name: String) {
        let pod = self.state.lock().unwrap().pods[&name].clone();
        let spec = pod.spec.clone().unwrap();
        let main = spec.containers[0].clone();
        let init = spec.init_containers.clone().unwrap()[0].clone();
        let var = self.dir.join("pods").join(&name);
        let env_of = |c: &k8s_openapi::api::core::v1::Container| -> HashMap<String, String> {
            c.env
                .iter()
                .flatten()
                .filter_map(|e| Some((e.name.clone(), e.value.clone()?)))
                .collect()
        };
        let init_env = env_of(&init);
        let env = emissary::Env {
            url: init_env["ARGON_STEP_URL"].clone(),
            token: init_env["ARGON_STEP_TOKEN"].clone(),
            outputs: Vec::new(),
            dir: var.clone(),
        };
        let status = |name: &str, state: ContainerState| ContainerStatus {
            name: name.into(),
            state: Some(state),
            image: String::new(),
            image_id: String::new(),
            ready: false,
            restart_count: 0,
            ..Default::default()
        };
        self.update(&name, |s| {
            s.phase = Some("Pending".into());
            s.start_time = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                k8s_openapi::jiff::Timestamp::now(),
            ));
        });
        if main.image.as_deref() == Some("registry.invalid/missing:1") {
            self.update(&name, |s| {
                s.container_statuses = Some(vec![status(
                    "main",
                    serde_json::from_value(json!({"waiting": {"reason": "ErrImagePull",
                        "message": "pull access denied for registry.invalid/missing"}}))
                    .unwrap(),
                )]);
            });
            return;
        }
        if let Err(e) = emissary::init(&env).await {
            self.update(&name, |s| {
                s.phase = Some("Failed".into());
                s.init_container_statuses = Some(vec![status(
                    "init",
                    serde_json::from_value(json!({"terminated": {"exitCode": 1, "message": e}})).unwrap(),
                )]);
            });
            return;
        }
        self.update(&name, |s| {
            s.phase = Some("Running".into());
            s.container_statuses = Some(vec![status(
                "main",
                serde_json::from_value(json!({"running": {}})).unwrap(),
            )]);
        });
        // The input mounts (subPath of the shared folder), as links at their paths.
        for m in main.volume_mounts.iter().flatten() {
            if let Some(sub) = m.sub_path.as_deref().filter(|s| s.starts_with("inputs/")) {
                std::os::unix::fs::symlink(var.join(sub), &m.mount_path).unwrap();
            }
        }
        let main_env = env_of(&main);
        let argv: Vec<String> = main.command.clone().unwrap()[4..]
            .iter()
            .map(|a| match a.as_str() {
                "/argo/staging/script" => var.join("script").display().to_string(),
                other => other.to_string(),
            })
            .collect();
        let vars: Vec<(String, String)> = main_env
            .iter()
            .filter(|(k, _)| !k.starts_with("ARGON_"))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let env = emissary::Env {
            outputs: serde_json::from_str(&main_env["ARGON_OUTPUTS"]).unwrap(),
            ..env
        };
        let log = var.join("main.log");
        let out = tokio::fs::File::create(&log).await.unwrap();
        let err = out.try_clone().await.unwrap();
        let code = emissary::run_with(&env, &argv, &vars, out, err).await;
        let lines: Vec<String> = std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect();
        self.state.lock().unwrap().logs.insert(name.clone(), lines);
        self.update(&name, |s| {
            s.phase = Some(if code == 0 { "Succeeded" } else { "Failed" }.into());
            s.container_statuses = Some(vec![status(
                "main",
                serde_json::from_value(json!({"terminated": {"exitCode": code,
                    "reason": if code == 0 { "Completed" } else { "Error" }}}))
                .unwrap(),
            )]);
        });
    }
}

fn main_of(p: &Pod) -> Option<&ContainerStatus> {
    p.status
        .as_ref()?
        .container_statuses
        .as_ref()?
        .iter()
        .find(|c| c.name == "main")
}

/// An engine on the kubernetes executor over the fake cluster, with its API
/// served on a free port for the pods' emissaries.
async fn engine(dir: &Path) -> (Arc<Engine>, Fake) {
    let fake = Fake::new(dir);
    let engine = engine_at(dir, &fake, tokio::runtime::Handle::current(), 0).await;
    (engine, fake)
}

/// An engine over `fake` (answered on `fake_rt`, which may outlive this
/// engine's runtime), its API on `port` (0: a free one).
async fn engine_at(dir: &Path, fake: &Fake, fake_rt: tokio::runtime::Handle, port: u16) -> Arc<Engine> {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "argon");
    fake_rt.spawn(fake.clone().serve(handle));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let state = dir.join("state");
    let mut c = EngineConfig::new(&state);
    c.executor = ExecutorChoice::Kubernetes;
    c.kubernetes = Some(Settings {
        client,
        namespace: "argon".into(),
        image: "argon:test".into(),
        callback_url: format!("http://{addr}"),
        state_dir: state.clone(),
        allow_host_path: false,
    });
    let engine = Engine::open(c).unwrap();
    assert_eq!(engine.executor_kind(), ExecutorKind::Kubernetes);
    let app = argon_engine::server::router(argon_engine::server::ApiState {
        engine: engine.clone(),
        auth: Default::default(),
        metrics: None,
        events: None,
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    engine
}

fn wf(body: &str) -> argon_crds::workflow::Workflow {
    workflow_with_spec("k-", body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn steps_run_as_pods_with_their_settings_outputs_logs_and_pod_gc() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let (engine, fake) = engine(dir.path()).await;
    let body = format!(
        r#"  entrypoint: main
  serviceAccountName: steps
  podGC:
    strategy: OnPodSuccess
  nodeSelector:
    disk: ssd
  tolerations:
  - {{key: dedicated, operator: Equal, value: ci, effect: NoSchedule}}
  securityContext:
    runAsNonRoot: true
    runAsUser: 1000
  podMetadata:
    labels:
      team: data
  templates:
  - name: main
    steps:
    - - name: make
        template: make
    - - name: use
        template: use
        arguments:
          parameters:
          - {{name: said, value: "{{{{steps.make.outputs.parameters.said}}}}"}}
          - {{name: result, value: "{{{{steps.make.outputs.result}}}}"}}
  - name: make
    tolerations:
    - {{key: gpu, operator: Exists}}
    script:
      image: busybox:1
      command: [sh]
      env:
      - name: TOKEN
        valueFrom:
          secretKeyRef: {{name: creds, key: token}}
      - {{name: GREETING, value: hello}}
      resources:
        limits: {{memory: 64Mi, cpu: 500m}}
      source: |
        echo "$GREETING from a pod"
        printf written > {out}/said.txt
    outputs:
      parameters:
      - name: said
        valueFrom: {{path: {out}/said.txt}}
  - name: use
    inputs:
      parameters:
      - name: said
      - name: result
    container:
      image: busybox:1
      command: [sh, -c]
      args: ["echo got {{{{inputs.parameters.said}}}} and {{{{inputs.parameters.result}}}}; echo oops >&2; exit 3"]
"#,
        out = out.display()
    );
    let (ns, name) = submit(&engine, wf(&body), &[]).await;
    let done = wait_done(&engine, &ns, &name).await;
    assert_eq!(phase(&done), Some(WorkflowPhase::Failed), "{}", dump(&done));
    let make = node(&done, "make");
    assert_eq!(make.phase, Some(NodePhase::Succeeded), "{}", dump(&done));
    assert_eq!(result(make), "hello from a pod");
    let said = make
        .outputs
        .as_ref()
        .unwrap()
        .parameters
        .iter()
        .find(|p| p.name == "said")
        .unwrap();
    assert_eq!(said.value.as_ref().map(|v| v.to_string()).as_deref(), Some("written"));
    let used = node(&done, "use");
    assert_eq!(used.phase, Some(NodePhase::Failed));
    let message = used.message.clone().unwrap_or_default();
    assert!(message.contains("exit code 3") && message.contains("oops"), "{message}");
    let (_, lines) = engine.logs(&ns, &name, 0).unwrap();
    let lines: Vec<String> = lines.into_iter().map(|(l, _)| l.line).collect();
    assert!(lines.contains(&"hello from a pod".to_string()), "{lines:?}");
    assert!(
        lines.contains(&"got written and hello from a pod".to_string()),
        "{lines:?}"
    );

    let created = fake.state.lock().unwrap().created.clone();
    assert_eq!(created.len(), 2, "one pod per step");
    let pod = &created[0];
    let labels = pod.metadata.labels.clone().unwrap();
    assert_eq!(labels["workflows.argoproj.io/workflow"], name);
    assert_eq!(labels["team"], "data");
    let spec = pod.spec.as_ref().unwrap();
    assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
    assert_eq!(spec.service_account_name.as_deref(), Some("steps"));
    assert_eq!(spec.node_selector.as_ref().unwrap()["disk"], "ssd");
    let tolerations: Vec<String> = spec
        .tolerations
        .iter()
        .flatten()
        .filter_map(|t| t.key.clone())
        .collect();
    assert_eq!(tolerations, ["dedicated", "gpu"], "the workflow's and the template's");
    assert_eq!(spec.security_context.as_ref().unwrap().run_as_user, Some(1000));
    let init = &spec.init_containers.as_ref().unwrap()[0];
    assert_eq!(init.image.as_deref(), Some("argon:test"));
    assert_eq!(init.command.as_ref().unwrap(), &["argon", "emissary", "init"]);
    let init_sc = init.security_context.as_ref().unwrap();
    assert_eq!(init_sc.read_only_root_filesystem, Some(true));
    assert_eq!(init_sc.allow_privilege_escalation, Some(false));
    let main = &spec.containers[0];
    assert_eq!(main.name, "main");
    assert_eq!(main.image.as_deref(), Some("busybox:1"));
    assert_eq!(
        main.command.as_ref().unwrap()[..6],
        [
            "/var/run/argon/argon",
            "emissary",
            "run",
            "--",
            "sh",
            "/argo/staging/script"
        ]
    );
    let env = main.env.as_ref().unwrap();
    let token = env.iter().find(|e| e.name == "TOKEN").unwrap();
    let secret = token.value_from.as_ref().unwrap().secret_key_ref.as_ref().unwrap();
    assert_eq!(
        (secret.name.as_str(), secret.key.as_str()),
        ("creds", "token"),
        "left for the cluster"
    );
    let limits = main.resources.as_ref().unwrap().limits.as_ref().unwrap();
    assert_eq!(limits["memory"].0, "64Mi");
    let mounts = main.volume_mounts.as_ref().unwrap();
    assert!(
        mounts
            .iter()
            .any(|m| m.mount_path == "/argo/staging/script" && m.sub_path.as_deref() == Some("script"))
    );
    let volumes = spec.volumes.as_ref().unwrap();
    assert!(volumes.iter().any(|v| v.name == "argon-var" && v.empty_dir.is_some()));
    // podGC OnPodSuccess: the succeeded step's pod is deleted, the failed one's kept.
    let make_pod = pod.metadata.name.clone().unwrap();
    let use_pod = created[1].metadata.name.clone().unwrap();
    wait_for(&fake, "the succeeded pod to be deleted", |c| {
        c.deleted.contains(&make_pod)
    })
    .await;
    assert!(!fake.state.lock().unwrap().deleted.contains(&use_pod));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn input_artifacts_reach_the_pod_through_its_init_container() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, fake) = engine(dir.path()).await;
    let place = dir.path().join("note.txt");
    let body = format!(
        r#"  entrypoint: main
  templates:
  - name: main
    inputs:
      artifacts:
      - {{name: note, path: {place}, raw: {{data: "from raw\n"}}}}
    container:
      image: busybox:1
      command: [cat, {place}]
"#,
        place = place.display()
    );
    let done = run(&engine, wf(&body), &[]).await;
    assert_eq!(phase(&done), Some(WorkflowPhase::Succeeded), "{}", dump(&done));
    assert_eq!(result(node(&done, &done.metadata.name.clone().unwrap())), "from raw");
    let created = fake.state.lock().unwrap().created.clone();
    let mounts = created[0].spec.as_ref().unwrap().containers[0]
        .volume_mounts
        .clone()
        .unwrap();
    assert!(
        mounts
            .iter()
            .any(|m| m.mount_path == place.display().to_string() && m.sub_path.as_deref() == Some("inputs/0")),
        "{mounts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_failure_ends_the_step_with_the_reason_and_bad_pods_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, fake) = engine(dir.path()).await;
    let done = run(
        &engine,
        wf(r#"  entrypoint: main
  templates:
  - name: main
    container:
      image: registry.invalid/missing:1
      command: ["true"]
"#),
        &[],
    )
    .await;
    assert_eq!(phase(&done), Some(WorkflowPhase::Failed), "{}", dump(&done));
    let message = node(&done, &done.metadata.name.clone().unwrap())
        .message
        .clone()
        .unwrap_or_default();
    assert!(
        message.contains("ErrImagePull") && message.contains("pull access denied"),
        "{message}"
    );
    let name = fake.state.lock().unwrap().created[0].metadata.name.clone().unwrap();
    wait_for(&fake, "the failed pod to be deleted", |c| c.deleted.contains(&name)).await;

    // No command: the image's entrypoint is not known to the engine.
    let done = run(
        &engine,
        wf("  entrypoint: main\n  templates:\n  - name: main\n    container:\n      image: busybox:1\n"),
        &[],
    )
    .await;
    let message = message_of(&done);
    assert!(message.contains("has no command"), "{message}");
    // hostPath only with --allow-host-path.
    let done = run(
        &engine,
        wf(r#"  entrypoint: main
  volumes:
  - name: host
    hostPath: {path: /etc}
  templates:
  - name: main
    container:
      image: busybox:1
      command: [cat, /host/passwd]
      volumeMounts:
      - {name: host, mountPath: /host}
"#),
        &[],
    )
    .await;
    let message = message_of(&done);
    assert!(
        message.contains("hostPath") && message.contains("--allow-host-path"),
        "{message}"
    );
    assert_eq!(
        fake.state.lock().unwrap().created.len(),
        1,
        "refused pods are never created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_step_routes_want_the_steps_token_and_a_running_step() {
    let dir = tempfile::tempdir().unwrap();
    let (engine, _fake) = engine(dir.path()).await;
    let app = argon_engine::server::router(argon_engine::server::ApiState {
        engine: engine.clone(),
        // The API's own token does not guard the step routes, nor open them.
        auth: argon_engine::server::ApiAuth {
            write: argon_engine::server::Token::new("api-token"),
            read: None,
        },
        metrics: None,
        events: None,
    });
    use tower::ServiceExt as _;
    let call = |method: &str, uri: &str, token: &str| {
        axum::http::Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {token}"))
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let status = |r: axum::response::Response| r.status().as_u16();
    let uri = "/api/v1/steps/some-uid/some-node/inputs";
    assert_eq!(
        status(app.clone().oneshot(call("GET", uri, "api-token")).await.unwrap()),
        401
    );
    assert_eq!(status(app.clone().oneshot(call("GET", uri, "")).await.unwrap()), 401);
    let transfers = argon_engine::executor::kubernetes::transfer::Transfers::open(&dir.path().join("state")).unwrap();
    let token = transfers.token("some-uid", "some-node");
    // A valid token of a step the engine does not run now: try again later.
    assert_eq!(
        status(app.clone().oneshot(call("GET", uri, &token)).await.unwrap()),
        503
    );
    let bad = "/api/v1/steps/..%2F..%2Fetc/x/inputs";
    assert_ne!(
        status(app.clone().oneshot(call("GET", bad, &token)).await.unwrap()),
        200
    );
}

/// An engine that dies (its runtime dropped, every task with it, as a
/// SIGKILL ends a process) while its step's pod runs: the next engine on
/// the same state dir re-attaches to the pod, collects the outcome the
/// emissary sent once the engine was back, and the workflow ends as it
/// would have; no second pod is made.
#[test]
fn a_restarted_engine_re_attaches_to_the_pod_its_step_runs_in() {
    let cluster_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let fake = Fake::new(dir.path());
    let gate = dir.path().join("gate");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let first = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let body = format!(
        "  entrypoint: main\n  templates:\n  - name: main\n    container:\n      image: busybox:1\n      \
         command: [sh, -c]\n      args: ['while [ ! -e {} ]; do sleep 0.05; done; echo finished']\n",
        gate.display()
    );
    let (ns, name) = first.block_on(async {
        let engine = engine_at(dir.path(), &fake, cluster_rt.handle().clone(), port).await;
        submit(&engine, wf(&body), &[]).await
    });
    cluster_rt.block_on(wait_for(&fake, "the step's main container to run", |c| {
        c.pods
            .values()
            .any(|p| main_of(p).is_some_and(|c| c.state.as_ref().is_some_and(|s| s.running.is_some())))
    }));
    drop(first);
    // The step ends while no engine runs; its emissary waits for one.
    std::fs::write(&gate, "").unwrap();
    cluster_rt.block_on(async {
        let engine = engine_at(dir.path(), &fake, tokio::runtime::Handle::current(), port).await;
        tokio::spawn(argon_engine::serve(engine.clone(), std::future::pending()));
        let done = wait_done(&engine, &ns, &name).await;
        assert_eq!(phase(&done), Some(WorkflowPhase::Succeeded), "{}", dump(&done));
        assert_eq!(result(node(&done, &name)), "finished");
        let (_, lines) = engine.logs(&ns, &name, 0).unwrap();
        assert!(lines.iter().any(|(l, _)| l.line == "finished"), "{lines:?}");
    });
    assert_eq!(
        fake.state.lock().unwrap().created.len(),
        1,
        "re-attached, not started again"
    );
}

fn message_of(wf: &argon_crds::workflow::Workflow) -> String {
    let name = wf.metadata.name.clone().unwrap();
    node(wf, &name).message.clone().unwrap_or_default()
}

/// Waits until `f` holds of the fake cluster (10 s at most), checking it
/// again at each change the cluster records.
async fn wait_for(fake: &Fake, what: &str, f: impl Fn(&Cluster) -> bool) {
    let mut changed = fake.changed.subscribe();
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        while !f(&fake.state.lock().unwrap()) {
            changed.changed().await.unwrap();
        }
    });
    assert!(waited.await.is_ok(), "timed out waiting for {what}");
}
