//! Every example folder end to end, as its README says to use it: `argon run`
//! on the folder (ports moved to free ones), the request the README shows,
//! and the workflow it should produce.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon_e2e::{Api, Example, Proc, free_port, wait_until};
use serde_json::{Value, json};

const RUN: Duration = Duration::from_secs(120);

struct Running {
    proc: Proc,
    api: Api,
    _state: tempfile::TempDir,
}

fn run(example: &Example, secrets: Option<&Path>) -> Running {
    let state = tempfile::tempdir().unwrap();
    let api_addr = format!("127.0.0.1:{}", free_port());
    let secrets_dir = secrets.map(|dir| ["--secrets-dir", dir.to_str().unwrap()]);
    let proc = example.run(
        state.path(),
        &api_addr,
        secrets_dir.as_ref().map_or(&[][..], |a| &a[..]),
        &[],
    );
    Running {
        proc,
        api: Api::new(&api_addr),
        _state: state,
    }
}

fn post(url: &str, headers: &[(&str, &str)], body: &str) -> u16 {
    argon_e2e::http("POST", url, headers, body).map_or(0, |(status, _)| status)
}

fn only_workflow(api: &Api) -> Value {
    let workflows = api.wait_finished(1, RUN);
    assert_eq!(workflows.len(), 1, "{workflows:?}");
    workflows.into_iter().next().unwrap()
}

fn name(w: &Value) -> String {
    w["metadata"]["name"].as_str().unwrap().to_string()
}

fn stop(mut r: Running) {
    assert_eq!(
        r.proc.terminate(Duration::from_secs(30)),
        Some(0),
        "{}",
        r.proc.output()
    );
}

#[test]
fn github_push_runs_the_ci_dag_on_the_pushed_commit() {
    let example = Example::prepare("github-ci", &[]);
    // A local repository with a passing test and a build, as a push would name it.
    let repo = tempfile::tempdir().unwrap();
    let git = |args: &[&str]| {
        let out = Command::new("git")
            .args(args)
            .current_dir(repo.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    git(&["init", "-q"]);
    std::fs::write(repo.path().join("test.sh"), "echo tests passed\n").unwrap();
    std::fs::write(repo.path().join("build.sh"), "echo built release 1.0\n").unwrap();
    git(&["add", "."]);
    git(&[
        "-c",
        "user.name=t",
        "-c",
        "user.email=t@example.com",
        "commit",
        "-qm",
        "first",
    ]);
    let sha = git(&["rev-parse", "HEAD"]);

    let secrets = example.dir.path().join("secrets");
    let r = run(&example, Some(&secrets));
    let url = format!("http://127.0.0.1:{}/push", example.port(12001));
    let body = json!({
        "ref": "refs/heads/main",
        "after": sha,
        "repository": {"full_name": "argon-example/app", "clone_url": repo.path().to_str().unwrap()},
    })
    .to_string();
    let signature = format!("sha256={}", hmac_sha256_hex(b"argon-example-secret", body.as_bytes()));
    let headers = [
        ("Content-Type", "application/json"),
        ("X-GitHub-Event", "push"),
        ("X-GitHub-Delivery", "d-1"),
        ("X-Hub-Signature-256", signature.as_str()),
    ];
    assert_eq!(post(&url, &headers[..3], &body), 401, "unsigned push is refused");
    assert_eq!(post(&url, &headers, &body), 200);

    let w = only_workflow(&r.api);
    assert_eq!(w["status"]["phase"], "Succeeded", "{w}");
    let logs = r.api.logs(&name(&w));
    assert!(logs.contains(&sha), "checkout logs the commit: {logs}");
    assert!(
        logs.contains("tests passed") && logs.contains("built release 1.0"),
        "{logs}"
    );
    stop(r);
}

/// HMAC-SHA256 of the body, hex-encoded, as GitHub signs a delivery.
fn hmac_sha256_hex(key: &[u8], body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key).unwrap();
    mac.update(body);
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn gitlab_merge_request_runs_a_workflow() {
    let example = Example::prepare("gitlab", &[]);
    let secrets = example.dir.path().join("secrets");
    let r = run(&example, Some(&secrets));
    let url = format!("http://127.0.0.1:{}/gitlab", example.port(12002));
    let body =
        r#"{"object_kind":"merge_request","object_attributes":{"title":"Add feature","source_branch":"feature"}}"#;
    let mut headers = vec![
        ("Content-Type", "application/json"),
        ("X-Gitlab-Event", "Merge Request Hook"),
    ];
    assert_eq!(post(&url, &headers, body), 401, "no token");
    headers.push(("X-Gitlab-Token", "argon-example-token"));
    assert_eq!(post(&url, &headers, body), 200);
    let w = only_workflow(&r.api);
    assert_eq!(w["status"]["phase"], "Succeeded", "{w}");
    assert!(
        r.api
            .logs(&name(&w))
            .contains("merge request 'Add feature' from feature")
    );
    stop(r);
}

#[test]
fn calendar_ticks_run_workflows() {
    // The example ticks every 10 s; the test makes it 1 s.
    let example = Example::prepare("calendar", &[("interval: 10s", "interval: 1s")]);
    let r = run(&example, None);
    let workflows = r.api.wait_finished(2, RUN);
    assert!(
        workflows.iter().all(|w| w["status"]["phase"] == "Succeeded"),
        "{workflows:?}"
    );
    let logs = r.api.logs(&name(&workflows[0]));
    assert!(
        logs.contains("tick at 20"),
        "the tick time (a 20xx date) is printed: {logs}"
    );
    stop(r);
}

#[test]
fn conditions_fire_deploy_once_build_and_test_arrived() {
    let example = Example::prepare("conditions", &[]);
    let r = run(&example, None);
    let base = format!("http://127.0.0.1:{}", example.port(12003));
    let json_ct = [("Content-Type", "application/json")];
    assert_eq!(post(&format!("{base}/build"), &json_ct, r#"{"version":"1.2.3"}"#), 200);
    // Only half the condition: nothing may run yet. The log trigger fires, and
    // the sensor logs it; wait for that before checking no workflow exists.
    r.proc.wait_for_output("notify", RUN);
    assert!(r.api.workflows().is_empty(), "deploy must wait for test");
    assert_eq!(post(&format!("{base}/test"), &json_ct, "{}"), 200);
    let w = only_workflow(&r.api);
    assert_eq!(w["status"]["phase"], "Succeeded", "{w}");
    assert!(r.api.logs(&name(&w)).contains("deploying 1.2.3"));
    stop(r);
}

/// A one-request-at-a-time HTTP sink that records request bodies.
fn sink() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = bodies.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            let _ = reader.read_exact(&mut body);
            seen.lock().unwrap().push(String::from_utf8_lossy(&body).into_owned());
            let _ = stream.write_all(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    (port, bodies)
}

#[test]
fn http_trigger_posts_the_mapped_payload() {
    let (port, bodies) = sink();
    let example = Example::prepare("http-trigger", &[("127.0.0.1:12005", &format!("127.0.0.1:{port}"))]);
    let r = run(&example, None);
    let url = format!("http://127.0.0.1:{}/order", example.port(12004));
    assert_eq!(
        post(
            &url,
            &[("Content-Type", "application/json")],
            r#"{"id":7,"customer":"ada"}"#
        ),
        200
    );
    wait_until(RUN, "the HTTP trigger to reach the sink", || {
        !bodies.lock().unwrap().is_empty()
    })
    .unwrap();
    let body: Value = serde_json::from_str(&bodies.lock().unwrap()[0]).unwrap();
    // Without `useRawData` a parameter is set as a string, as upstream does.
    assert_eq!(body, json!({"id": "7", "customer": "ADA"}));
    stop(r);
}

#[test]
fn template_refs_run_steps_from_workflow_templates() {
    let example = Example::prepare("template-ref", &[]);
    let r = run(&example, None);
    let url = format!("http://127.0.0.1:{}/release", example.port(12006));
    assert_eq!(
        post(&url, &[("Content-Type", "application/json")], r#"{"version":"2.0.0"}"#),
        200
    );
    let w = only_workflow(&r.api);
    assert_eq!(w["status"]["phase"], "Succeeded", "{w}");
    let logs = r.api.logs(&name(&w));
    assert!(
        logs.contains("releasing 2.0.0") && logs.contains("Congratulations, team!"),
        "{logs}"
    );
    stop(r);
}

#[test]
fn status_dag_takes_the_path_the_check_chose() {
    let example = Example::prepare("status-dag", &[]);
    let r = run(&example, None);
    let url = format!("http://127.0.0.1:{}/check", example.port(12007));
    for (n, outcome, ran, skipped) in [
        (1, "failure", "failure-path", "success-path"),
        (2, "success", "success-path", "failure-path"),
    ] {
        let body = format!(r#"{{"outcome":"{outcome}"}}"#);
        assert_eq!(post(&url, &[("Content-Type", "application/json")], &body), 200);
        let workflows = r.api.wait_finished(n, RUN);
        let w = workflows
            .iter()
            .find(|w| w["spec"]["arguments"]["parameters"][0]["value"] == outcome)
            .unwrap_or_else(|| panic!("a workflow for {outcome}: {workflows:?}"));
        assert_eq!(
            w["status"]["phase"], "Succeeded",
            "continueOn.failed keeps the DAG going: {w}"
        );
        let w = r.api.get(&name(w));
        let nodes = w["status"]["nodes"].as_object().unwrap();
        let phase_of = |display: &str| {
            nodes
                .values()
                .find(|n| n["displayName"] == display)
                .map(|n| n["phase"].as_str().unwrap_or("").to_string())
        };
        assert_eq!(phase_of(ran).as_deref(), Some("Succeeded"), "{w}");
        assert_eq!(phase_of(skipped).as_deref(), Some("Skipped"), "{w}");
    }
    stop(r);
}
