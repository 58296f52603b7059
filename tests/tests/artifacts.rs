//! Artifacts on S3 through the real binary: `argon server` reads the
//! `artifact-repositories` ConfigMap from its manifest path, runs the seed
//! example against a real S3 server (moto), `argon get` shows where the
//! artifact went and `argon cp` downloads it.

use std::process::Command;
use std::time::Duration;

use argon_e2e::{Proc, argon_bin, free_port, repo_root};

fn argon_at(server: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(argon_bin())
        .args(args)
        .current_dir(repo_root())
        .env("ARGON_SERVER", server)
        .output()
        .expect("run argon");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_server_stores_the_seed_examples_artifact_on_s3_and_argon_cp_downloads_it() {
    let s3 = argon_engine::testing::s3();
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets");
    s3.write_secret(&secrets, "s3-creds");
    let manifests = dir.path().join("manifests");
    std::fs::create_dir_all(&manifests).unwrap();
    std::fs::write(
        manifests.join("repositories.yaml"),
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: artifact-repositories\n  annotations:\n    \
             workflows.argoproj.io/default-artifact-repository: moto\ndata:\n  moto: |\n    s3:\n      \
             endpoint: {}\n      bucket: argon-e2e\n      insecure: true\n      createBucketIfNotPresent: {{}}\n      \
             accessKeySecret: {{name: s3-creds, key: accesskey}}\n      secretKeySecret: {{name: s3-creds, key: secretkey}}\n",
            s3.endpoint
        ),
    )
    .unwrap();
    let api = format!("127.0.0.1:{}", free_port());
    let state = dir.path().join("state");
    let server = Proc::spawn(
        "argon server",
        &[
            "server",
            "--state-dir",
            state.to_str().unwrap(),
            "--api-addr",
            &api,
            "--secrets-dir",
            secrets.to_str().unwrap(),
            manifests.to_str().unwrap(),
        ],
        &[],
    );
    server.wait_for_output("listening on", Duration::from_secs(30));
    let url = format!("http://{api}");
    let (ok, text) = argon_at(&url, &["submit", "examples/workflows/artifact-passing.yaml", "--watch"]);
    assert!(ok && text.contains("Succeeded"), "{text}\n{}", server.output());

    let (ok, text) = argon_at(&url, &["get", "@latest"]);
    assert!(ok, "{text}");
    let line = text
        .lines()
        .find(|l| l.contains("hello-art") && l.contains("s3://argon-e2e/"))
        .unwrap_or_else(|| panic!("no artifact location in:\n{text}"));
    let key = line
        .split("s3://argon-e2e/")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .to_string();
    assert!(s3.keys("argon-e2e").contains(&key), "{key}");

    let out = dir.path().join("out");
    let (ok, text) = argon_at(&url, &["cp", "@latest", out.to_str().unwrap()]);
    assert!(ok, "{text}");
    let name = key.split('/').next().unwrap();
    let node = key.split('/').nth(1).unwrap();
    let file = out.join(format!("default/{name}/{node}/outputs/hello-art/hello-art.tgz"));
    let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{}: {e}\n{text}", file.display()));
    assert_eq!(bytes, s3.get("argon-e2e", &key), "argon cp gives the object as stored");

    // An unknown workflow is a clear error.
    let (ok, text) = argon_at(&url, &["cp", "no-such-workflow", out.to_str().unwrap()]);
    assert!(!ok && text.contains("no-such-workflow"), "{text}");
}

#[test]
fn use_sdk_creds_takes_the_credentials_from_the_environment() {
    let s3 = argon_engine::testing::s3();
    s3.create_bucket("argon-sdk-creds");
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "artifactRepository:\n  s3:\n    endpoint: {}\n    bucket: argon-sdk-creds\n    insecure: true\n    \
             useSDKCreds: true\n",
            s3.endpoint
        ),
    )
    .unwrap();
    let api = format!("127.0.0.1:{}", free_port());
    let state = dir.path().join("state");
    let server = Proc::spawn(
        "argon server",
        &[
            "server",
            "--state-dir",
            state.to_str().unwrap(),
            "--api-addr",
            &api,
            "--config",
            config.to_str().unwrap(),
        ],
        &[
            ("AWS_ACCESS_KEY_ID", s3.access_key.as_str()),
            ("AWS_SECRET_ACCESS_KEY", s3.secret_key.as_str()),
        ],
    );
    server.wait_for_output("listening on", Duration::from_secs(30));
    let url = format!("http://{api}");
    let (ok, text) = argon_at(&url, &["submit", "examples/workflows/artifact-passing.yaml", "--watch"]);
    assert!(ok && text.contains("Succeeded"), "{text}\n{}", server.output());
    let keys = s3.keys("argon-sdk-creds");
    assert!(keys.iter().any(|k| k.ends_with("/hello-art.tgz")), "{keys:?}");
}
