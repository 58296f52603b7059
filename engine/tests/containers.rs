//! Steps in real containers: a Podman API service started once for this
//! test binary on a socket in a temp dir, and the images `scripts/test-images`
//! builds locally (no registry is reached).

mod common;

use std::time::{Duration, Instant};

use argon_client::WorkflowAction;
use argon_crds::workflow::{NodePhase, NodeType, WorkflowPhase};
use argon_engine::{Engine, EngineConfig, ExecutorChoice, ExecutorKind};
use common::*;

use argon_engine::testing::{BUSYBOX, containers_of, podman};

fn config(dir: &std::path::Path) -> EngineConfig {
    let mut c = EngineConfig::new(dir.join("state"));
    c.executor = ExecutorChoice::Podman;
    c.container_host = Some(podman().socket().to_string());
    c
}

fn engine_with(f: impl FnOnce(&mut EngineConfig)) -> (tempfile::TempDir, std::sync::Arc<Engine>) {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    f(&mut c);
    let engine = Engine::open(c).unwrap();
    assert_eq!(engine.executor_kind(), ExecutorKind::Podman);
    (dir, engine)
}

fn wf(body: &str) -> argon_crds::workflow::Workflow {
    workflow_with_spec("c-", body)
}

/// The workflow's log lines: (node id, line).
fn log_lines(engine: &Engine, ns: &str, name: &str) -> Vec<(String, String)> {
    let (_, lines) = engine.logs(ns, name, 0).unwrap();
    lines.into_iter().map(|(l, _)| (l.node_id, l.line)).collect()
}

#[tokio::test]
async fn auto_picks_the_runtime_that_answers_and_falls_back_to_the_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path());
    c.executor = ExecutorChoice::Auto;
    let engine = Engine::open(c).unwrap();
    assert_eq!(engine.executor_kind(), ExecutorKind::Podman);
    assert!(
        engine.executor_description().contains("podman containers"),
        "{}",
        engine.executor_description()
    );

    let mut c = EngineConfig::new(dir.path().join("other"));
    c.executor = ExecutorChoice::Podman;
    c.container_host = Some("unix:///nonexistent/podman.sock".into());
    // Podman asked for and not answering is an error naming what was tried.
    if std::path::Path::new("/run/podman/podman.sock").exists() {
        return;
    }
    let err = Engine::open(c).err().expect("no runtime answers").to_string();
    assert!(err.contains("no container runtime answered"), "{err}");
    assert!(err.contains("/nonexistent/podman.sock: no such socket"), "{err}");
    assert!(
        "bogus"
            .parse::<ExecutorChoice>()
            .unwrap_err()
            .contains("auto, podman, docker, sandbox, host")
    );
}

#[tokio::test]
async fn a_container_runs_its_image_command_env_and_security_context() {
    let secrets = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(secrets.path().join("creds")).unwrap();
    std::fs::write(secrets.path().join("creds/token"), "s3cr3t\n").unwrap();
    std::fs::write(secrets.path().join("creds/user"), "bob").unwrap();
    let (_d, engine) = engine_with(|c| c.secrets = argon_crds::secret::Secrets::new(Some(secrets.path().into())));
    let w = run(
        &engine,
        wf(&format!(
            r#"
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {{name: env, template: env}}
      - {{name: entry, template: entry}}
      - {{name: user, template: user}}
      - {{name: readonly, template: readonly}}
      - {{name: limits, template: limits}}
      - {{name: host-root, template: host-root}}
  - name: env
    container:
      image: {BUSYBOX}
      command: [sh, -c]
      args: ["echo $GREETING $TOKEN $creds_user $(pwd) $(id -u)"]
      workingDir: /work/here
      env:
      - {{name: GREETING, value: hi}}
      - name: TOKEN
        valueFrom: {{secretKeyRef: {{name: creds, key: token}}}}
      envFrom:
      - {{prefix: creds_, secretRef: {{name: creds}}}}
  - name: entry
    container: {{image: localhost/argon-test/greeter:1, args: [world]}}
  - name: user
    securityContext: {{runAsUser: 1000, runAsGroup: 1000}}
    container: {{image: {BUSYBOX}, command: [id]}}
  - name: readonly
    container:
      image: {BUSYBOX}
      command: [sh, -c, "touch /x 2>/dev/null && echo wrote || echo read-only"]
      securityContext: {{readOnlyRootFilesystem: true}}
  - name: limits
    container:
      image: {BUSYBOX}
      command: [cat, /sys/fs/cgroup/memory/memory.limit_in_bytes]
      resources: {{limits: {{memory: 64Mi, cpu: 500m}}}}
  - name: host-root
    container: {{image: {BUSYBOX}, command: [sh, -c, "ls /root; cat /etc/hostname >/dev/null; ls /work 2>&1 | head -1"]}}
"#
        )),
        &[],
    )
    .await;
    assert_eq!(phase(&w), Some(WorkflowPhase::Succeeded), "{}", dump(&w));
    assert_eq!(result(node(&w, "env")), "hi s3cr3t bob /work/here 0");
    assert_eq!(result(node(&w, "entry")), "entrypoint says world");
    assert_eq!(
        result(node(&w, "user")),
        "uid=1000(user) gid=1000(user) groups=1000(user)"
    );
    assert_eq!(result(node(&w, "readonly")), "read-only");
    assert_eq!(result(node(&w, "limits")), (64u64 << 20).to_string());
    // The image's /root is empty and the host's folders are not there.
    assert!(
        result(node(&w, "host-root")).contains("No such file"),
        "{}",
        result(node(&w, "host-root"))
    );
    let uid = w.metadata.uid.clone().unwrap();
    assert!(
        containers_of(&uid).is_empty(),
        "containers are removed: {:?}",
        containers_of(&uid)
    );
}

#[tokio::test]
async fn run_as_non_root_refuses_a_root_image() {
    let (_d, engine) = engine_with(|_| {});
    let w = run(
        &engine,
        wf(&format!(
            "  entrypoint: main\n  templates:\n  - name: main\n    container:\n      image: {BUSYBOX}\n      command: [id]\n      securityContext: {{runAsNonRoot: true}}\n"
        )),
        &[],
    )
    .await;
    assert_eq!(phase(&w), Some(WorkflowPhase::Failed));
    assert!(message(&w).contains("has runAsNonRoot and image"), "{}", message(&w));
}

#[tokio::test]
async fn scripts_outputs_and_artifacts_cross_the_container_boundary() {
    let (_d, engine) = engine_with(|_| {});
    let w = run(
        &engine,
        wf(&format!(
            r#"
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {{name: gen, template: gen}}
    - - name: use
        template: use
        arguments:
          parameters: [{{name: n, value: "{{{{steps.gen.outputs.parameters.n}}}}"}}]
          artifacts:
          - {{name: tree, from: "{{{{steps.gen.outputs.artifacts.tree}}}}"}}
          - {{name: note, raw: {{data: "from raw\n"}}}}
    - - name: py
        template: py
        arguments:
          parameters: [{{name: x, value: "{{{{steps.use.outputs.result}}}}"}}]
  - name: gen
    container:
      image: {BUSYBOX}
      command: [sh, -c, "mkdir -p /out/sub && echo a > /out/a && echo b > /out/sub/b && echo 7 > /tmp/n"]
    outputs:
      parameters: [{{name: n, valueFrom: {{path: /tmp/n}}}}]
      artifacts: [{{name: tree, path: /out}}]
  - name: use
    inputs:
      parameters: [{{name: n}}]
      artifacts:
      - {{name: tree, path: /data/tree}}
      - {{name: note, path: /tmp/note}}
    container:
      image: {BUSYBOX}
      command: [sh, -c, "cat /data/tree/a /data/tree/sub/b /tmp/note; echo {{{{inputs.parameters.n}}}}"]
  - name: py
    inputs:
      parameters: [{{name: x}}]
    script:
      image: localhost/argon-test/python:1
      command: [python3]
      source: |
        import sys
        print(len("""{{{{inputs.parameters.x}}}}""".split()), sys.version_info[0])
"#
        )),
        &[],
    )
    .await;
    assert_eq!(phase(&w), Some(WorkflowPhase::Succeeded), "{}", dump(&w));
    assert_eq!(result(node(&w, "use")), "a\nb\nfrom raw\n7");
    assert_eq!(result(node(&w, "py")), "5 3");
}

#[tokio::test]
async fn volumes_init_containers_and_sidecars_share_the_pod() {
    let secrets = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(secrets.path().join("conf")).unwrap();
    std::fs::write(secrets.path().join("conf/greeting"), "hello from a secret").unwrap();
    let (_d, engine) = engine_with(|c| c.secrets = argon_crds::secret::Secrets::new(Some(secrets.path().into())));
    let w = run(
        &engine,
        wf(&format!(
            r#"
  entrypoint: main
  templates:
  - name: main
    volumes:
    - {{name: shared, emptyDir: {{}}}}
    - {{name: conf, secret: {{secretName: conf}}}}
    initContainers:
    - name: prepare
      image: {BUSYBOX}
      command: [sh, -c, "echo prepared > /shared/init"]
      volumeMounts: [{{name: shared, mountPath: /shared}}]
    sidecars:
    - name: web
      image: {BUSYBOX}
      command: [sh, -c, "mkdir /www && echo served > /www/index.html && exec httpd -f -p 8080 -h /www"]
    container:
      image: {BUSYBOX}
      command: [sh, -c]
      args:
      - |
        cat /shared/init /conf/greeting; echo
        for i in $(seq 100); do wget -q -O- http://127.0.0.1:8080/ && break; sleep 0.1; done
      volumeMounts:
      - {{name: shared, mountPath: /shared}}
      - {{name: conf, mountPath: /conf}}
"#
        )),
        &[],
    )
    .await;
    assert_eq!(phase(&w), Some(WorkflowPhase::Succeeded), "{}", dump(&w));
    let name = w.metadata.name.clone().unwrap();
    assert_eq!(result(node(&w, &name)), "prepared\nhello from a secret\nserved");
    let uid = w.metadata.uid.clone().unwrap();
    assert!(
        containers_of(&uid).is_empty(),
        "sidecars stop with the main container: {:?}",
        containers_of(&uid)
    );
}

#[tokio::test]
async fn host_paths_need_the_opt_in_and_bad_images_say_why() {
    let (_d, engine) = engine_with(|_| {});
    let cases = [
        (
            format!(
                "    volumes: [{{name: h, hostPath: {{path: /etc}}}}]\n    container: {{image: {BUSYBOX}, command: [ls, /h], volumeMounts: [{{name: h, mountPath: /h}}]}}\n"
            ),
            "host folders are only mounted with --allow-host-path",
        ),
        (
            "    container: {image: localhost/argon-test/absent:1, imagePullPolicy: Never, command: [\"true\"]}\n"
                .to_string(),
            "image localhost/argon-test/absent:1 is not present and imagePullPolicy is Never",
        ),
        (
            "    container: {image: 127.0.0.1:9/argon/absent:1, command: [\"true\"]}\n".to_string(),
            "cannot pull image 127.0.0.1:9/argon/absent:1 (ErrImagePull)",
        ),
    ];
    for (body, expected) in cases {
        let started = Instant::now();
        let w = run(
            &engine,
            wf(&format!("  entrypoint: main\n  templates:\n  - name: main\n{body}")),
            &[],
        )
        .await;
        assert_eq!(phase(&w), Some(WorkflowPhase::Failed), "{}", dump(&w));
        assert!(message(&w).contains(expected), "{} should say {expected}", message(&w));
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no hang: {:?}",
            started.elapsed()
        );
    }
    let (_d, engine) = engine_with(|c| c.allow_host_path = true);
    let w = run(
        &engine,
        wf(&format!(
            "  entrypoint: main\n  templates:\n  - name: main\n    volumes: [{{name: h, hostPath: {{path: /etc}}}}]\n    container: {{image: {BUSYBOX}, command: [test, -e, /h/passwd], volumeMounts: [{{name: h, mountPath: /h, readOnly: true}}]}}\n"
        )),
        &[],
    )
    .await;
    assert_eq!(phase(&w), Some(WorkflowPhase::Succeeded), "{}", dump(&w));
}

#[tokio::test]
async fn deadlines_stops_and_live_logs_reach_the_container() {
    let (_d, engine) = engine_with(|_| {});
    let started = Instant::now();
    let w = run(
        &engine,
        wf(&format!(
            "  entrypoint: main\n  templates:\n  - name: main\n    activeDeadlineSeconds: 1\n    container: {{image: {BUSYBOX}, command: [sleep, \"60\"]}}\n"
        )),
        &[],
    )
    .await;
    assert_eq!(phase(&w), Some(WorkflowPhase::Failed));
    assert!(
        message(&w).contains("longer than the specified deadline (1s)"),
        "{}",
        message(&w)
    );
    assert!(started.elapsed() < Duration::from_secs(20));

    // Logs stream while the step runs; stopping the workflow kills the container.
    let (ns, name) = submit(
        &engine,
        wf(&format!(
            "  entrypoint: main\n  templates:\n  - name: main\n    container: {{image: {BUSYBOX}, command: [sh, -c, \"echo first line; sleep 60\"]}}\n"
        )),
        &[],
    )
    .await;
    let w = engine.get_workflow(&ns, &name).unwrap();
    let uid = w.metadata.uid.clone().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if log_lines(&engine, &ns, &name).iter().any(|(_, l)| l == "first line") {
            break;
        }
        assert!(Instant::now() < deadline, "no live log line");
        engine.watch(&ns, &name, Duration::from_millis(100)).await.unwrap();
    }
    engine.act_on(&ns, &name, WorkflowAction::Stop).await.unwrap();
    let w = wait_done(&engine, &ns, &name).await;
    assert_eq!(phase(&w), Some(WorkflowPhase::Failed), "{}", dump(&w));
    assert!(containers_of(&uid).is_empty(), "{:?}", containers_of(&uid));
}

#[test]
fn a_step_outlives_the_engine_and_is_re_attached() {
    let dir = tempfile::tempdir().unwrap();
    let body = wf(&format!(
        r#"
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {{name: long, template: long}}
    - - {{name: after, template: after, arguments: {{parameters: [{{name: v, value: "{{{{steps.long.outputs.parameters.v}}}}"}}]}}}}
  - name: long
    container:
      image: {BUSYBOX}
      command: [sh, -c, "echo started; while [ ! -e /tmp/go ]; do sleep 0.1; done; echo 42 > /tmp/v; echo finished"]
    outputs:
      parameters: [{{name: v, valueFrom: {{path: /tmp/v}}}}]
  - name: after
    inputs: {{parameters: [{{name: v}}]}}
    container: {{image: {BUSYBOX}, command: [echo, "got {{{{inputs.parameters.v}}}}"]}}
"#
    ));
    // First engine: start the workflow, then lose the process while `long` runs.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (ns, name, uid) = rt.block_on(async {
        let engine = Engine::open(config(dir.path())).unwrap();
        let (ns, name) = submit(&engine, body, &[]).await;
        let w = wait_until(&engine, &ns, &name, Duration::from_secs(30), |w| {
            nodes(w, "long")
                .first()
                .is_some_and(|n| n.phase == Some(NodePhase::Running))
        })
        .await;
        let uid = w.metadata.uid.clone().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        while !log_lines(&engine, &ns, &name).iter().any(|(_, l)| l == "started") {
            assert!(Instant::now() < deadline, "the step never started");
            engine.watch(&ns, &name, Duration::from_millis(100)).await.unwrap();
        }
        (ns, name, uid)
    });
    rt.shutdown_background();
    // The container goes on without the engine; let it finish its work.
    let running = containers_of(&uid);
    assert_eq!(running.len(), 1, "{running:?}");
    let ok = std::process::Command::new("podman")
        .args(["exec", &running[0], "touch", "/tmp/go"])
        .status()
        .unwrap()
        .success();
    assert!(ok);

    // Second engine on the same state dir: re-attaches, collects, goes on.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let engine = Engine::open(config(dir.path())).unwrap();
        engine.resume_unfinished().unwrap();
        let w = wait_done(&engine, &ns, &name).await;
        assert_eq!(phase(&w), Some(WorkflowPhase::Succeeded), "{}", dump(&w));
        let long = node(&w, "long");
        assert_eq!(result(long), "started\nfinished");
        assert_eq!(result(node(&w, "after")), "got 42");
        let pods = w
            .status
            .iter()
            .flat_map(|s| s.nodes.values())
            .filter(|n| n.type_ == Some(NodeType::Pod))
            .count();
        assert_eq!(pods, 2, "no step ran twice: {}", dump(&w));
        let lines: Vec<String> = log_lines(&engine, &ns, &name)
            .into_iter()
            .filter(|(id, _)| *id == long.id)
            .map(|(_, l)| l)
            .collect();
        assert_eq!(lines, ["started", "finished"], "each log line once");
        assert!(containers_of(&uid).is_empty());
    });
}

#[tokio::test]
async fn a_container_set_runs_in_dependency_order_and_shares_its_volume() {
    let (_d, engine) = engine_with(|_| {});
    let w = run(
        &engine,
        wf(&format!(
            r#"
  entrypoint: main
  templates:
  - name: main
    volumes: [{{name: workspace, emptyDir: {{}}}}]
    containerSet:
      volumeMounts: [{{name: workspace, mountPath: /workspace}}]
      containers:
      - {{name: a, image: {BUSYBOX}, command: [sh, -c, "echo a >> /workspace/order"]}}
      - {{name: b, image: {BUSYBOX}, command: [sh, -c, "echo b >> /workspace/order"], dependencies: [a]}}
      - {{name: main, image: {BUSYBOX}, command: [sh, -c, "cat /workspace/order; echo main >> /workspace/order; cp /workspace/order /tmp/order"], dependencies: [b]}}
    outputs:
      parameters: [{{name: order, valueFrom: {{path: /tmp/order}}}}]
"#
        )),
        &[],
    )
    .await;
    assert_eq!(phase(&w), Some(WorkflowPhase::Succeeded), "{}", dump(&w));
    let name = w.metadata.name.clone().unwrap();
    let n = node(&w, &name);
    assert_eq!(result(n), "a\nb");
    let out = n.outputs.as_ref().unwrap();
    assert_eq!(out.parameters[0].value_or_default(), Some("a\nb\nmain"));
}

/// A daemon step serves the steps after it, by address and by name, once
/// its readiness probe passes, and is stopped when its steps template ends.
#[tokio::test]
async fn a_daemon_serves_later_steps_until_its_scope_ends() {
    let (_d, engine) = engine_with(|_| {});
    let manifest = std::fs::read_to_string(repo_root().join("examples/workflows/daemon-step.yaml"))
        .unwrap()
        .replace("busybox:1.36", BUSYBOX);
    let w = run(&engine, workflow_of(manifests(&manifest)), &[]).await;
    assert_eq!(phase(&w), Some(WorkflowPhase::Succeeded), "{}", dump(&w));
    let server = node(&w, "server");
    assert_eq!(server.phase, Some(NodePhase::Succeeded), "{}", dump(&w));
    assert_eq!(server.daemoned, None, "no longer a daemon once stopped");
    let ip = server.pod_ip.clone().expect("the daemon's address");
    assert!(ip.parse::<std::net::Ipv4Addr>().is_ok(), "{ip}");
    assert_eq!(result(node(&w, "by-address")), "served");
    assert_eq!(result(node(&w, "by-name")), "served");
    // Stopped after its scope's last step, not before.
    let last = node(&w, "by-address").finished_at.clone().unwrap();
    assert!(server.finished_at.clone().unwrap() >= last, "{}", dump(&w));
    let uid = w.metadata.uid.clone().unwrap();
    assert!(containers_of(&uid).is_empty(), "{:?}", containers_of(&uid));
}

/// In a DAG: a daemon task with an exec probe, its dependents see it by
/// `{{tasks.NAME.ip}}` and `depends: NAME.Daemoned`; a nested steps
/// template's daemon is gone once that template ends; a daemon that dies
/// before it is ready fails with its exit code.
#[tokio::test]
async fn daemons_in_dags_nested_scopes_and_daemons_that_die() {
    let (_d, engine) = engine_with(|_| {});
    let w = run(
        &engine,
        wf(&format!(
            r#"
  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - {{name: db, template: server}}
      - {{name: use, template: client, depends: db.Daemoned, arguments: {{parameters: [{{name: host, value: "{{{{tasks.db.ip}}}}"}}]}}}}
      - {{name: inner, template: inner, depends: use}}
      - {{name: gone, template: gone, depends: inner, arguments: {{parameters: [{{name: host, value: "{{{{tasks.inner.outputs.parameters.ip}}}}"}}]}}}}
  - name: inner
    steps:
    - - {{name: cache, template: server}}
    - - {{name: probe, template: client, arguments: {{parameters: [{{name: host, value: cache}}]}}}}
    - - {{name: ip, template: echo, arguments: {{parameters: [{{name: v, value: "{{{{steps.cache.ip}}}}"}}]}}}}
    outputs:
      parameters: [{{name: ip, valueFrom: {{parameter: "{{{{steps.ip.outputs.result}}}}"}}}}]
  - name: server
    daemon: true
    container:
      image: {BUSYBOX}
      command: [sh, -c, "sleep 0.5; mkdir -p /www && echo served > /www/index.html && exec httpd -f -p 8080 -h /www"]
      readinessProbe: {{exec: {{command: [test, -e, /www/index.html]}}, periodSeconds: 1}}
  - name: client
    inputs: {{parameters: [{{name: host}}]}}
    container: {{image: {BUSYBOX}, command: [wget, -q, -O-, "http://{{{{inputs.parameters.host}}}}:8080/"]}}
  - name: echo
    inputs: {{parameters: [{{name: v}}]}}
    container: {{image: {BUSYBOX}, command: [echo, "{{{{inputs.parameters.v}}}}"]}}
  - name: gone
    inputs: {{parameters: [{{name: host}}]}}
    container: {{image: {BUSYBOX}, command: [sh, -c, "! wget -q -T 2 -O- http://{{{{inputs.parameters.host}}}}:8080/"]}}
"#
        )),
        &[],
    )
    .await;
    assert_eq!(phase(&w), Some(WorkflowPhase::Succeeded), "{}", dump(&w));
    assert_eq!(result(node(&w, "use")), "served");
    assert_eq!(result(node(&w, "probe")), "served");
    assert_eq!(node(&w, "cache").phase, Some(NodePhase::Succeeded));
    assert_eq!(node(&w, "db").phase, Some(NodePhase::Succeeded));
    let uid = w.metadata.uid.clone().unwrap();
    assert!(containers_of(&uid).is_empty(), "{:?}", containers_of(&uid));

    let w = run(
        &engine,
        wf(&format!(
            r#"
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {{name: flaky, template: flaky}}
    - - {{name: never, template: echo}}
  - name: flaky
    daemon: true
    container:
      image: {BUSYBOX}
      command: [sh, -c, "echo cannot bind >&2; sleep 0.3; exit 3"]
      readinessProbe: {{exec: {{command: ["false"]}}, periodSeconds: 1}}
  - name: echo
    container: {{image: {BUSYBOX}, command: [echo, hi]}}
"#
        )),
        &[],
    )
    .await;
    assert_eq!(phase(&w), Some(WorkflowPhase::Failed), "{}", dump(&w));
    let flaky = node(&w, "flaky");
    assert_eq!(flaky.phase, Some(NodePhase::Failed));
    assert_eq!(
        flaky.message.as_deref(),
        Some("Error (exit code 3): the daemon ended before it was ready: cannot bind"),
        "{}",
        dump(&w)
    );
    assert!(nodes(&w, "never").is_empty());
    let uid = w.metadata.uid.clone().unwrap();
    assert!(containers_of(&uid).is_empty(), "{:?}", containers_of(&uid));
}

#[tokio::test]
async fn the_seed_example_passes_its_artifact_between_containers_through_s3() {
    let s3 = argon_engine::testing::s3();
    s3.create_bucket("argon-containers");
    let secrets = tempfile::tempdir().unwrap();
    s3.write_secret(secrets.path(), "s3-creds");
    let repo = argon_engine::artifacts::repository::parse(&format!(
        "s3:\n  endpoint: {}\n  bucket: argon-containers\n  insecure: true\n  \
         accessKeySecret: {{name: s3-creds, key: accesskey}}\n  secretKeySecret: {{name: s3-creds, key: secretkey}}\n",
        s3.endpoint
    ))
    .unwrap();
    let (_d, engine) = engine_with(|c| {
        c.secrets = argon_crds::secret::Secrets::new(Some(secrets.path().into()));
        c.artifact_repository = Some(repo);
    });
    // The seed example, on the images this machine builds (no registry).
    let text = std::fs::read_to_string(repo_root().join("examples/workflows/artifact-passing.yaml"))
        .unwrap()
        .replace("yky8/argosay:v2", BUSYBOX)
        .replace("alpine:latest", BUSYBOX)
        .replace("/usr/local/bin/argosay echo", "echo");
    let w = run(&engine, workflow_of(manifests(&text)), &[]).await;
    assert_eq!(phase(&w), Some(WorkflowPhase::Succeeded), "{}", dump(&w));
    assert_eq!(result(node(&w, "consume-artifact")), "hello world");
    let key = node(&w, "generate-artifact").outputs.as_ref().unwrap().artifacts[0]
        .location
        .s3
        .as_ref()
        .unwrap()
        .key
        .clone()
        .unwrap();
    assert!(s3.keys("argon-containers").contains(&key), "{key}");
}
