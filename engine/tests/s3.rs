//! Artifacts on S3: workflows run by the engine against a real S3 server
//! (moto, started once for this test binary on a free port, with IAM
//! authentication on), with objects checked through boto3, not through
//! Argon's own client.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use argon_crds::secret::Secrets;
use argon_crds::workflow::{NodePhase, WorkflowPhase};
use argon_engine::artifacts::repository;
use argon_engine::testing::{S3Server, s3};
use common::*;
use k8s_openapi::api::core::v1::ConfigMap;

/// An engine whose default artifact repository is `bucket` on the test's
/// S3 server, with the server's credentials as secret `s3-creds`.
fn s3_harness(bucket: &str, extra: &str) -> (Harness, tempfile::TempDir) {
    s3_harness_at(s3(), &s3().endpoint, bucket, extra, |_| {})
}

fn s3_harness_at(
    server: &S3Server,
    endpoint: &str,
    bucket: &str,
    extra: &str,
    f: impl FnOnce(&mut argon_engine::EngineConfig),
) -> (Harness, tempfile::TempDir) {
    let secrets = tempfile::tempdir().unwrap();
    server.write_secret(secrets.path(), "s3-creds");
    let repo = repository::parse(&repo_yaml(endpoint, bucket, extra)).unwrap();
    let h = harness_with(|c| {
        c.secrets = Secrets::new(Some(secrets.path().to_path_buf()));
        c.artifact_repository = Some(repo);
        f(c);
    });
    (h, secrets)
}

fn repo_yaml(endpoint: &str, bucket: &str, extra: &str) -> String {
    format!(
        "s3:\n  endpoint: {endpoint}\n  bucket: {bucket}\n  insecure: true\n  \
         accessKeySecret: {{name: s3-creds, key: accesskey}}\n  secretKeySecret: {{name: s3-creds, key: secretkey}}\n{extra}"
    )
}

fn output_s3(wf: &argon_crds::workflow::Workflow, step: &str, artifact: &str) -> argon_crds::workflow::S3Artifact {
    let n = node(wf, step);
    let a = n
        .outputs
        .as_ref()
        .and_then(|o| o.artifacts.iter().find(|a| a.name == artifact))
        .unwrap_or_else(|| panic!("{step} has no output artifact {artifact}: {}", dump(wf)));
    a.location.s3.clone().expect("an s3 location")
}

#[tokio::test]
async fn the_seed_example_passes_its_artifact_through_the_default_s3_repository() {
    s3().create_bucket("argon-seed");
    let (h, _secrets) = s3_harness("argon-seed", "");
    let wf = run(&h.engine, workflow_of(example("artifact-passing.yaml")), &[]).await;
    assert_eq!(phase(&wf), Some(WorkflowPhase::Succeeded), "{}", dump(&wf));
    let loc = output_s3(&wf, "generate-artifact", "hello-art");
    let name = wf.metadata.name.clone().unwrap();
    let key = loc.key.clone().unwrap();
    // Argo's default key format: {{workflow.name}}/{{pod.name}}/NAME.tgz.
    assert!(
        key.starts_with(&format!("{name}/{name}-")) && key.ends_with("/hello-art.tgz"),
        "{key}"
    );
    assert_eq!(loc.bucket.as_deref(), Some("argon-seed"));
    assert_eq!(loc.endpoint.as_deref(), Some(s3().endpoint.as_str()));
    assert!(s3().keys("argon-seed").contains(&key), "{:?}", s3().keys("argon-seed"));
    // The object is a gzip'd tar.
    assert_eq!(&s3().get("argon-seed", &key)[..2], &[0x1f, 0x8b]);
    assert_eq!(node(&wf, "consume-artifact").phase, Some(NodePhase::Succeeded));
    let status = wf.status.as_ref().unwrap().artifact_repository_ref.clone().unwrap();
    assert_eq!(status["default"], true, "{status}");
}

const PASSING: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: kinds-
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - name: make
        template: make
    - - name: use
        template: use
        arguments:
          artifacts:
          - {name: file, from: "{{steps.make.outputs.artifacts.file}}"}
          - {name: tree, from: "{{steps.make.outputs.artifacts.tree}}"}
          - {name: zipped, from: "{{steps.make.outputs.artifacts.zipped}}"}
          - {name: custom, from: "{{steps.make.outputs.artifacts.custom}}"}
          - name: by-key
            s3:
              key: "fixed/{{workflow.name}}/custom.txt"
  - name: make
    script:
      image: busybox
      command: [sh]
      source: |
        echo 'hello world' > /tmp/hello_world.txt
        mkdir -p /tmp/tree/sub
        echo A > /tmp/tree/a
        echo B > /tmp/tree/sub/b
        echo custom > /tmp/custom.txt
    outputs:
      artifacts:
      - {name: file, path: /tmp/hello_world.txt}
      - {name: tree, path: /tmp/tree, archive: {none: {}}}
      - {name: zipped, path: /tmp/tree, archive: {zip: {}}}
      - name: custom
        path: /tmp/custom.txt
        archive: {none: {}}
        s3:
          key: "fixed/{{workflow.name}}/custom.txt"
      - {name: absent, path: /tmp/never-written, optional: true}
  - name: use
    inputs:
      artifacts:
      - {name: file, path: /tmp/in/file, mode: 448}
      - {name: tree, path: /tmp/in/tree}
      - {name: zipped, path: /tmp/in/zipped}
      - {name: custom, path: /tmp/in/custom}
      - {name: by-key, path: /tmp/in/by-key}
      - name: missing
        path: /tmp/in/missing
        optional: true
        s3:
          key: no/such/key
    script:
      image: busybox
      command: [sh]
      source: |
        cat /tmp/in/file /tmp/in/tree/a /tmp/in/tree/sub/b /tmp/in/zipped/sub/b /tmp/in/custom /tmp/in/by-key
        stat -c %a /tmp/in/file
        test ! -e /tmp/in/missing && echo no-missing
"#;

#[tokio::test]
async fn files_directories_archive_strategies_and_key_only_artifacts_round_trip_through_a_config_map_repository() {
    s3().create_bucket("argon-kinds");
    let secrets = tempfile::tempdir().unwrap();
    s3().write_secret(secrets.path(), "s3-creds");
    let mut cm = ConfigMap::default();
    cm.metadata.name = Some(repository::DEFAULT_CONFIG_MAP.into());
    cm.metadata.annotations = Some([(repository::DEFAULT_KEY_ANNOTATION.to_string(), "moto".to_string())].into());
    cm.data = Some(
        [(
            "moto".to_string(),
            repo_yaml(
                &s3().endpoint,
                "argon-kinds",
                "  keyFormat: \"runs/{{workflow.name}}/{{pod.name}}\"\n",
            ),
        )]
        .into(),
    );
    let h = harness_with(|c| {
        c.secrets = Secrets::new(Some(secrets.path().to_path_buf()));
        c.config_maps = vec![cm];
    });
    let wf = run(&h.engine, workflow_of(manifests(PASSING)), &[]).await;
    assert_eq!(phase(&wf), Some(WorkflowPhase::Succeeded), "{}", dump(&wf));
    assert_eq!(
        result(node(&wf, "use")),
        "hello world\nA\nB\nB\ncustom\ncustom\n700\nno-missing"
    );
    let name = wf.metadata.name.clone().unwrap();
    let keys = s3().keys("argon-kinds");
    let made = node(&wf, "make").id.clone();
    for k in [
        format!("runs/{name}/{made}/file.tgz"),
        format!("runs/{name}/{made}/tree/a"),
        format!("runs/{name}/{made}/tree/sub/b"),
        format!("runs/{name}/{made}/zipped.zip"),
        format!("fixed/{name}/custom.txt"),
    ] {
        assert!(keys.contains(&k), "{k} not in {keys:?}");
    }
    assert_eq!(
        s3().get("argon-kinds", &format!("fixed/{name}/custom.txt")),
        b"custom\n"
    );
    assert_eq!(
        &s3().get("argon-kinds", &format!("runs/{name}/{made}/zipped.zip"))[..2],
        b"PK"
    );
    let status = wf.status.as_ref().unwrap().artifact_repository_ref.clone().unwrap();
    assert_eq!(status["configMap"], "artifact-repositories");
    assert_eq!(status["key"], "moto");
    let outputs = node(&wf, "make").outputs.clone().unwrap();
    assert!(outputs.artifacts.iter().all(|a| a.name != "absent"));
}

const ONE_STEP: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: one-
spec:
  entrypoint: make
  templates:
  - name: make
    script:
      image: busybox
      command: [sh]
      source: |
        echo 'hello world' > /tmp/out.txt
        echo a log line
    outputs:
      artifacts:
      - {name: out, path: /tmp/out.txt}
"#;

#[tokio::test]
async fn a_missing_bucket_bad_credentials_and_an_unknown_repository_are_clear_errors() {
    // No such bucket, and nothing asks to create it.
    let (h, secrets) = s3_harness("argon-never-made", "");
    let wf = run(&h.engine, workflow_of(manifests(ONE_STEP)), &[]).await;
    assert_eq!(phase(&wf), Some(WorkflowPhase::Error), "{}", dump(&wf));
    let m = node(&wf, &wf.metadata.name.clone().unwrap())
        .message
        .clone()
        .unwrap_or_default();
    assert!(
        m.contains("output artifact 'out'") && m.contains("s3://argon-never-made/") && m.contains("NoSuchBucket"),
        "{m}"
    );

    // The right key id with a wrong secret.
    s3().create_bucket("argon-bad-creds");
    let (h, secrets2) = s3_harness("argon-bad-creds", "");
    std::fs::write(secrets2.path().join("s3-creds/secretkey"), "not-the-secret").unwrap();
    let wf = run(&h.engine, workflow_of(manifests(ONE_STEP)), &[]).await;
    assert_eq!(phase(&wf), Some(WorkflowPhase::Error), "{}", dump(&wf));
    assert!(
        message_of_root(&wf).contains("credentials were refused"),
        "{}",
        dump(&wf)
    );

    // A secret that is not there.
    std::fs::remove_file(secrets.path().join("s3-creds/accesskey")).unwrap();
    let wf = run(&h_with_secrets(&secrets), workflow_of(manifests(ONE_STEP)), &[]).await;
    assert_eq!(phase(&wf), Some(WorkflowPhase::Error), "{}", dump(&wf));
    assert!(message_of_root(&wf).contains("s3 accessKeySecret"), "{}", dump(&wf));

    // A repository ref that names no ConfigMap.
    let h = harness();
    let mut w = workflow_of(manifests(ONE_STEP));
    w.spec.artifact_repository_ref = Some(argon_crds::workflow::ArtifactRepositoryRef {
        config_map: Some("my-repos".into()),
        key: Some("minio".into()),
    });
    let wf = run(&h.engine, w, &[]).await;
    assert_eq!(phase(&wf), Some(WorkflowPhase::Error), "{}", dump(&wf));
    assert!(
        message(&wf).contains("no ConfigMap 'my-repos' in namespace 'default'"),
        "{}",
        dump(&wf)
    );

    // GCS is not supported yet, and says so.
    let h = harness();
    let gcs = ONE_STEP.replace("path: /tmp/out.txt}", "path: /tmp/out.txt, gcs: {bucket: b, key: k}}");
    let wf = run(&h.engine, workflow_of(manifests(&gcs)), &[]).await;
    assert_eq!(phase(&wf), Some(WorkflowPhase::Error), "{}", dump(&wf));
    assert!(
        message_of_root(&wf).contains("GCS (gcs) artifact locations are not supported yet"),
        "{}",
        dump(&wf)
    );
}

fn h_with_secrets(secrets: &tempfile::TempDir) -> Arc<argon_engine::Engine> {
    let repo = repository::parse(&repo_yaml(&s3().endpoint, "argon-bad-creds", "")).unwrap();
    let h = harness_with(|c| {
        c.secrets = Secrets::new(Some(secrets.path().to_path_buf()));
        c.artifact_repository = Some(repo);
    });
    // The harness's temp dir goes with it; the engine keeps its state open.
    std::mem::forget(h.dir);
    h.engine
}

fn message_of_root(wf: &argon_crds::workflow::Workflow) -> String {
    let name = wf.metadata.name.clone().unwrap();
    let root = node(wf, &name).message.clone().unwrap_or_default();
    format!("{root} / {}", message(wf))
}

#[tokio::test]
async fn create_bucket_if_not_present_makes_the_bucket_and_archive_logs_stores_the_logs() {
    let (h, _secrets) = s3_harness(
        "argon-made-by-argon",
        "  createBucketIfNotPresent: {}\narchiveLogs: true\n",
    );
    let wf = run(&h.engine, workflow_of(manifests(ONE_STEP)), &[]).await;
    assert_eq!(phase(&wf), Some(WorkflowPhase::Succeeded), "{}", dump(&wf));
    let name = wf.metadata.name.clone().unwrap();
    let keys = s3().keys("argon-made-by-argon");
    assert!(keys.contains(&format!("{name}/{name}/out.tgz")), "{keys:?}");
    let logs = output_s3(&wf, &name, "main-logs");
    assert_eq!(logs.key.as_deref(), Some(format!("{name}/{name}/main.log").as_str()));
    assert_eq!(
        String::from_utf8(s3().get("argon-made-by-argon", logs.key.as_deref().unwrap())).unwrap(),
        "a log line\n"
    );
    // Once the live workflow is gone (deleted, or by its ttlStrategy) and its
    // step folder with it, `argon logs` reads the archived logs back.
    let ns = wf.metadata.namespace.clone().unwrap_or_default();
    h.engine.delete_workflow(&ns, &name).unwrap();
    assert!(h.engine.get_workflow(&ns, &name).is_err());
    assert!(
        !h.engine
            .config()
            .state_dir
            .join("steps")
            .join(wf.metadata.uid.as_deref().unwrap())
            .exists()
    );
    let lines = argon_client::WorkflowAdmin::logs(h.engine.as_ref(), &ns, &name, 0)
        .await
        .unwrap();
    let text: Vec<_> = lines
        .iter()
        .map(|l| (l.seq, l.step.as_str(), l.line.as_str()))
        .collect();
    assert_eq!(text, [(1, name.as_str(), "a log line")]);
    // A follower past the end gets nothing more.
    assert!(
        argon_client::WorkflowAdmin::logs(h.engine.as_ref(), &ns, &name, 1)
            .await
            .unwrap()
            .is_empty()
    );
    // Not archived anywhere: still a plain "not found".
    let missing = argon_client::WorkflowAdmin::logs(h.engine.as_ref(), &ns, "no-such-workflow", 0).await;
    assert!(
        matches!(missing, Err(argon_engine::Error::NotFound { .. })),
        "{missing:?}"
    );
}

const GC: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: gc-
spec:
  entrypoint: make
  artifactGC:
    strategy: OnWorkflowDeletion
  templates:
  - name: make
    script:
      image: busybox
      command: [sh]
      source: |
        echo one > /tmp/one; echo two > /tmp/two; echo three > /tmp/three
    outputs:
      artifacts:
      - name: on-completion
        path: /tmp/one
        artifactGC: {strategy: OnWorkflowCompletion}
      - {name: on-deletion, path: /tmp/two}
      - name: kept
        path: /tmp/three
        artifactGC: {strategy: Never}
"#;

#[tokio::test]
async fn artifact_gc_deletes_objects_when_the_workflow_completes_and_when_it_is_deleted() {
    s3().create_bucket("argon-gc");
    let (h, _secrets) = s3_harness("argon-gc", "");
    let wf = run(&h.engine, workflow_of(manifests(GC)), &[]).await;
    assert_eq!(phase(&wf), Some(WorkflowPhase::Succeeded), "{}", dump(&wf));
    let name = wf.metadata.name.clone().unwrap();
    let key = |a: &str| format!("{name}/{name}/{a}.tgz");
    // Completion's GC runs before the workflow is reported finished.
    let keys = s3().keys("argon-gc");
    assert!(!keys.contains(&key("on-completion")), "{keys:?}");
    assert!(
        keys.contains(&key("on-deletion")) && keys.contains(&key("kept")),
        "{keys:?}"
    );
    let wf = h.engine.get_workflow("", &name).unwrap();
    let arts = node(&wf, &name).outputs.clone().unwrap().artifacts;
    assert_eq!(
        arts.iter().find(|a| a.name == "on-completion").unwrap().deleted,
        Some(true)
    );
    h.engine.delete_workflow("", &name).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let keys = s3().keys("argon-gc");
        if !keys.contains(&key("on-deletion")) {
            assert!(keys.contains(&key("kept")), "{keys:?}");
            break;
        }
        assert!(Instant::now() < deadline, "on-deletion was not deleted: {keys:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A proxy in front of the S3 server that answers the first `failures`
/// requests with 503 and passes everything after through.
async fn flaky_proxy(failures: usize) -> (String, Arc<AtomicUsize>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let failed = Arc::new(AtomicUsize::new(0));
    let count = failed.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut client, _)) = listener.accept().await else {
                return;
            };
            let count = count.clone();
            tokio::spawn(async move {
                if count.fetch_add(1, Ordering::SeqCst) < failures {
                    // Read the request's head (and body) before answering.
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 8192];
                    loop {
                        let Ok(n) = client.read(&mut chunk).await else { return };
                        if n == 0 {
                            return;
                        }
                        buf.extend_from_slice(&chunk[..n]);
                        let text = String::from_utf8_lossy(&buf).to_string();
                        if let Some(end) = text.find("\r\n\r\n") {
                            let len = text[..end]
                                .lines()
                                .find_map(|l| {
                                    let (k, v) = l.split_once(':')?;
                                    k.eq_ignore_ascii_case("content-length")
                                        .then(|| v.trim().parse::<usize>().ok())?
                                })
                                .unwrap_or(0);
                            if buf.len() >= end + 4 + len {
                                break;
                            }
                        }
                    }
                    let _ = client
                        .write_all(
                            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        )
                        .await;
                    return;
                }
                count.fetch_sub(1, Ordering::SeqCst);
                let Ok(mut server) = tokio::net::TcpStream::connect(&s3().endpoint).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            });
        }
    });
    (addr.to_string(), failed)
}

#[tokio::test]
async fn a_5xx_from_the_server_is_retried() {
    s3().create_bucket("argon-flaky");
    let (endpoint, failed) = flaky_proxy(2).await;
    let (h, _secrets) = s3_harness_at(s3(), &endpoint, "argon-flaky", "", |_| {});
    let wf = run(&h.engine, workflow_of(manifests(ONE_STEP)), &[]).await;
    assert_eq!(phase(&wf), Some(WorkflowPhase::Succeeded), "{}", dump(&wf));
    assert_eq!(failed.load(Ordering::SeqCst), 2, "both 503s were answered");
    let name = wf.metadata.name.clone().unwrap();
    assert!(s3().keys("argon-flaky").contains(&format!("{name}/{name}/out.tgz")));
}

const BIG: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: big-
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: make, template: make}
    - - name: use
        template: use
        arguments:
          artifacts:
          - {name: big, from: "{{steps.make.outputs.artifacts.big}}"}
  - name: make
    script:
      image: busybox
      command: [sh]
      source: head -c 48M /dev/urandom > /tmp/big
    outputs:
      artifacts:
      - {name: big, path: /tmp/big, archive: {tar: {compressionLevel: 1}}}
  - name: use
    inputs:
      artifacts:
      - {name: big, path: /tmp/big}
    script:
      image: busybox
      command: [sh]
      source: wc -c < /tmp/big
"#;

#[tokio::test]
async fn an_artifact_larger_than_a_part_goes_up_in_a_multipart_upload_and_comes_back_whole() {
    s3().create_bucket("argon-big");
    let (h, _secrets) = s3_harness("argon-big", "");
    let wf = run(&h.engine, workflow_of(manifests(BIG)), &[]).await;
    assert_eq!(phase(&wf), Some(WorkflowPhase::Succeeded), "{}", dump(&wf));
    assert_eq!(result(node(&wf, "use")).trim(), (48 << 20).to_string());
    let loc = output_s3(&wf, "make", "big");
    assert!(s3().keys("argon-big").contains(&loc.key.unwrap()));
}
