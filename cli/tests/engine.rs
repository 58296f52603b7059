//! `argon server` and the workflow verbs as processes: submit (with
//! parameters and --watch), list, get -o json, logs, suspend/resume/stop,
//! delete, templates, lint errors at submit, and a server killed mid-run
//! that picks its workflow up again.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn example(name: &str) -> String {
    repo().join("examples/workflows").join(name).display().to_string()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Server {
    child: Child,
    url: String,
    state: PathBuf,
    path: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory for the test that the steps' sandbox can see (not under /tmp).
fn workdir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

/// Starts `argon server` (sandbox executor) on a free port with a stand-in
/// `cowsay` on the steps' PATH.
fn server(dir: &Path) -> Server {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let cowsay = bin.join("cowsay");
    std::fs::write(&cowsay, "#!/bin/sh\necho \"< $* >\"\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&cowsay, std::fs::Permissions::from_mode(0o755)).unwrap();
    start(dir.join("state"), bin.display().to_string())
}

/// `path`: the `--step-path` folders.
fn start(state: PathBuf, path: String) -> Server {
    start_with(state, path, &["--executor", "sandbox", "--allow-host-path"], &[])
}

fn start_with(state: PathBuf, path: String, args: &[&str], env: &[(&str, &str)]) -> Server {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let child = Command::new(env!("CARGO_BIN_EXE_argon"))
        .args(["server", "--state-dir"])
        .arg(&state)
        .args(["--api-addr", &format!("127.0.0.1:{port}")])
        .args(args)
        .args(if path.is_empty() {
            vec![]
        } else {
            vec!["--step-path", path.as_str()]
        })
        .envs(env.iter().copied())
        .env_remove("ARGON_AUTH_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let s = Server {
        child,
        url,
        state,
        path,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "argon server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    s
}

fn argon(s: &Server, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_argon"))
        .args(args)
        .env("ARGON_SERVER", &s.url)
        .env_remove("ARGON_AUTH_TOKEN")
        .output()
        .unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "argon failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn get_json(s: &Server, name: &str) -> serde_json::Value {
    serde_json::from_str(&ok(&argon(s, &["get", name, "-o", "json"]))).unwrap()
}

fn wait_phase(s: &Server, name: &str, f: impl Fn(&serde_json::Value) -> bool) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let wf = get_json(s, name);
        if f(&wf) {
            return wf;
        }
        assert!(Instant::now() < deadline, "not reached: {wf:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn submit_watch_get_logs_list_and_delete() {
    let dir = workdir();
    let s = server(dir.path());
    let out = argon(&s, &["submit", &example("hello-world.yaml"), "--watch"]);
    let text = ok(&out);
    assert!(text.contains("Status:              Succeeded"), "{text}");
    assert!(text.contains("✔ hello-world-"), "{text}");

    let wf = get_json(&s, "@latest");
    let name = wf["metadata"]["name"].as_str().unwrap().to_string();
    assert_eq!(wf["status"]["phase"], "Succeeded");
    let node = &wf["status"]["nodes"][&name];
    assert_eq!(node["displayName"], name.as_str());
    assert_eq!(node["type"], "Pod");
    assert_eq!(node["phase"], "Succeeded");
    assert_eq!(node["outputs"]["result"], "< hello world >");

    let logs = ok(&argon(&s, &["logs", &name]));
    assert_eq!(logs.trim(), format!("{name}: < hello world >"));
    let list = ok(&argon(&s, &["list"]));
    assert!(
        list.lines().any(|l| l.starts_with(&name) && l.contains("Succeeded")),
        "{list}"
    );
    let yaml = ok(&argon(&s, &["get", &name, "-o", "yaml"]));
    assert!(yaml.contains("phase: Succeeded"), "{yaml}");

    // Parameters reach the entrypoint's inputs.
    let text = ok(&argon(
        &s,
        &[
            "submit",
            &example("webhook-whalesay.yaml"),
            "-p",
            "message=hi",
            "-p",
            "who=you",
            "--watch",
        ],
    ));
    assert!(text.contains("Succeeded"), "{text}");
    let logs = ok(&argon(&s, &["logs", "@latest"]));
    assert!(logs.trim().ends_with(": < hi you >"), "{logs}");

    // A failing workflow makes --watch exit 1.
    let out = argon(&s, &["submit", &example("resource-job.yaml"), "--watch"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("need a cluster"));

    ok(&argon(&s, &["delete", &name]));
    let out = argon(&s, &["get", &name]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not found"), "{out:?}");
}

#[test]
fn invalid_workflows_are_refused_with_the_lint_message() {
    let dir = workdir();
    let s = server(dir.path());
    let file = dir.path().join("bad.yaml");
    std::fs::write(
        &file,
        "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata:\n  generateName: bad-\nspec:\n  entrypoint: main\n  \
         templates:\n  - name: main\n    steps:\n    - - name: a\n        template: ecoh\n  - name: echo\n    container:\n      \
         image: alpine\n      command: [echo]\n",
    )
    .unwrap();
    let out = argon(&s, &["submit", file.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.yaml:11:") && err.contains("did you mean 'echo'"),
        "{err}"
    );
    // The server refuses it too when the client does not lint.
    let typo = dir.path().join("typo.yaml");
    std::fs::write(
        &typo,
        "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata:\n  generateName: t-\nspec:\n  entrypoint: main\n  \
         templates:\n  - name: main\n    steps:\n    - - name: a\n        templateRef: {name: missing-template, template: x}\n",
    )
    .unwrap();
    let out = argon(&s, &["submit", typo.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid workflow") && err.contains("missing-template"),
        "{err}"
    );
    assert!(ok(&argon(&s, &["list", "-o", "name"])).trim().is_empty());
}

#[test]
fn templates_suspend_resume_stop() {
    let dir = workdir();
    let s = server(dir.path());
    let text = ok(&argon(
        &s,
        &[
            "template",
            "create",
            &example("whalesay-template.yaml"),
            &example("congratulations-template.yaml"),
        ],
    ));
    assert!(text.contains("WorkflowTemplate 'whalesay-template' created"), "{text}");
    let list = ok(&argon(&s, &["template", "list"]));
    assert!(
        list.contains("congratulations-template") && list.contains("argo-events"),
        "{list}"
    );
    let got = ok(&argon(
        &s,
        &["template", "get", "whalesay-template", "-n", "argo-events"],
    ));
    assert!(got.contains("kind: WorkflowTemplate"), "{got}");
    let text = ok(&argon(&s, &["submit", &example("combined-workflow.yaml"), "--watch"]));
    assert!(text.contains("whalesay-template/whalesay"), "{text}");
    assert!(text.contains("Succeeded"), "{text}");

    // Runs of a WorkflowTemplate are listed by --template.
    let wt = dir.path().join("greet.yaml");
    std::fs::write(
        &wt,
        "apiVersion: argoproj.io/v1alpha1\nkind: WorkflowTemplate\nmetadata:\n  name: greet\nspec:\n  entrypoint: main\n  \
         templates:\n  - name: main\n    container: {image: alpine, command: [echo, hi]}\n",
    )
    .unwrap();
    ok(&argon(&s, &["template", "create", wt.to_str().unwrap()]));
    ok(&argon(&s, &["submit", "--from", "workflowtemplate/greet", "--watch"]));
    let runs = ok(&argon(&s, &["list", "--template", "greet", "-o", "name"]));
    assert_eq!(runs.lines().count(), 1, "{runs}");
    assert!(runs.starts_with("greet-"), "{runs}");
    ok(&argon(&s, &["template", "delete", "greet"]));
    assert!(!argon(&s, &["template", "get", "greet"]).status.success());

    // Suspend, resume, stop.
    let name = ok(&argon(&s, &["submit", &example("suspend-template.yaml"), "-o", "name"]))
        .trim()
        .to_string();
    wait_phase(&s, &name, |w| {
        w["status"]["nodes"].as_object().is_some_and(|n| {
            n.values()
                .any(|n| n["displayName"] == "approve" && n["phase"] == "Running")
        })
    });
    ok(&argon(&s, &["suspend", &name]));
    assert_eq!(get_json(&s, &name)["spec"]["suspend"], true);
    ok(&argon(&s, &["resume", &name]));
    wait_phase(&s, &name, |w| {
        w["status"]["nodes"].as_object().is_some_and(|n| {
            n.values()
                .any(|n| n["displayName"] == "delay" && n["phase"] == "Running")
        })
    });
    let tree = ok(&argon(&s, &["get", &name]));
    assert!(tree.contains("✔ approve") && tree.contains("ǁ delay"), "{tree}");
    ok(&argon(&s, &["stop", &name]));
    let wf = wait_phase(&s, &name, |w| w["status"]["phase"] == "Failed");
    assert_eq!(wf["status"]["message"], "Stopped with strategy 'Stop'");
    let out = argon(&s, &["resume", &name]);
    assert!(!out.status.success());
}

/// A sandboxed step dies with a killed server; the restarted server runs
/// it again from the start, once, and says so on the node, without
/// spending one of the template's retries on it.
#[test]
fn a_killed_server_resumes_its_workflow_on_restart() {
    let dir = workdir();
    let gate = dir.path().join("gate");
    std::fs::create_dir_all(&gate).unwrap();
    let mut s = server(dir.path());
    let file = dir.path().join("long.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata:\n  generateName: long-\nspec:\n  entrypoint: main\n  \
             volumes: [{{name: gate, hostPath: {{path: \"{}\"}}}}]\n  \
             templates:\n  - name: main\n    steps:\n    - - {{name: first, template: quick}}\n    - - {{name: slow, template: slow}}\n    \
             - - {{name: last, template: quick}}\n  - name: quick\n    container: {{image: alpine, command: [echo, ok]}}\n  - name: slow\n    \
             retryStrategy: {{limit: 2}}\n    container:\n      image: alpine\n      volumeMounts: [{{name: gate, mountPath: /gate}}]\n      \
             command: [sh, -c, \"until [ -e /gate/open ]; do sleep 0.05; done; echo attempt {{{{retries}}}}\"]\n",
            gate.display()
        ),
    )
    .unwrap();
    let name = ok(&argon(&s, &["submit", file.to_str().unwrap(), "-o", "name"]))
        .trim()
        .to_string();
    let slow_running = |w: &serde_json::Value, message: Option<&str>| {
        w["status"]["nodes"].as_object().is_some_and(|n| {
            n.values().any(|n| {
                n["displayName"] == "slow(0)"
                    && n["phase"] == "Running"
                    && message.is_none_or(|m| n["message"].as_str().is_some_and(|s| s.contains(m)))
            })
        })
    };
    wait_phase(&s, &name, |w| slow_running(w, None));
    // Killed without warning, then started again on the same state.
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    let state = s.state.clone();
    let path = s.path.clone();
    drop(s);
    let s = start(state, path);
    wait_phase(&s, &name, |w| slow_running(w, Some("runs again from the start")));
    std::fs::write(gate.join("open"), "").unwrap();
    let wf = wait_phase(&s, &name, |w| w["status"]["phase"] == "Succeeded");
    let nodes = wf["status"]["nodes"].as_object().unwrap();
    let by = |d: &str| nodes.values().find(|n| n["displayName"] == d).cloned();
    let slow = by("slow(0)").unwrap();
    assert_eq!(slow["phase"], "Succeeded", "{slow:#}");
    assert_eq!(slow["outputs"]["result"], "attempt 0");
    assert!(by("slow(1)").is_none(), "the restart took a retry: {wf:#}");
    assert_eq!(by("last").unwrap()["phase"], "Succeeded");
    assert!(nodes.values().all(|n| n["phase"] != "Running"));
}

/// `argon server --executor podman` killed with SIGKILL while a step runs:
/// the container goes on, and the restarted server re-attaches to it,
/// collects its logs and outputs, and the workflow ends as it would have
/// without the crash.
#[test]
fn a_killed_server_re_attaches_to_its_running_container() {
    use argon_engine::testing::{BUSYBOX, containers_of, podman};
    let dir = workdir();
    let env = [("CONTAINER_HOST", podman().socket())];
    let args = ["--executor", "podman"];
    let mut s = start_with(dir.path().join("state"), String::new(), &args, &env);
    let file = dir.path().join("long.yaml");
    std::fs::write(
        &file,
        format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata:\n  generateName: long-\nspec:\n  entrypoint: main\n  \
             templates:\n  - name: main\n    steps:\n    - - {{name: long, template: long}}\n    \
             - - {{name: after, template: after, arguments: {{parameters: [{{name: v, value: \"{{{{steps.long.outputs.parameters.v}}}}\"}}]}}}}\n  \
             - name: long\n    container:\n      image: {BUSYBOX}\n      \
             command: [sh, -c, \"echo started; until [ -e /tmp/go ]; do sleep 0.1; done; echo 42 > /tmp/v; echo finished\"]\n    \
             outputs: {{parameters: [{{name: v, valueFrom: {{path: /tmp/v}}}}]}}\n  \
             - name: after\n    inputs: {{parameters: [{{name: v}}]}}\n    \
             container: {{image: {BUSYBOX}, command: [echo, \"got {{{{inputs.parameters.v}}}}\"]}}\n"
        ),
    )
    .unwrap();
    let name = ok(&argon(&s, &["submit", file.to_str().unwrap(), "-o", "name"]))
        .trim()
        .to_string();
    let wf = wait_phase(&s, &name, |_| {
        let out = argon(&s, &["logs", &name]);
        String::from_utf8_lossy(&out.stdout).contains("started")
    });
    let uid = wf["metadata"]["uid"].as_str().unwrap().to_string();
    s.child.kill().unwrap();
    s.child.wait().unwrap();
    let state = s.state.clone();
    drop(s);
    // The step goes on without the server; let it finish its work.
    let running = containers_of(&uid);
    assert_eq!(running.len(), 1, "{running:?}");
    let touched = Command::new("podman")
        .args(["exec", &running[0], "touch", "/tmp/go"])
        .status()
        .unwrap();
    assert!(touched.success());
    let s = start_with(state, String::new(), &args, &env);
    let wf = wait_phase(&s, &name, |w| w["status"]["phase"] != "Running");
    assert_eq!(wf["status"]["phase"], "Succeeded", "{wf:#}");
    let nodes = wf["status"]["nodes"].as_object().unwrap();
    let by = |d: &str| nodes.values().find(|n| n["displayName"] == d).cloned().unwrap();
    assert_eq!(by("long")["outputs"]["result"], "started\nfinished");
    assert_eq!(by("after")["outputs"]["result"], "got 42");
    let pods = nodes.values().filter(|n| n["type"] == "Pod").count();
    assert_eq!(pods, 2, "no step ran twice: {wf:#}");
    let logs = ok(&argon(&s, &["logs", &name]));
    assert_eq!(logs.matches("started").count(), 1, "each line once: {logs}");
    assert!(containers_of(&uid).is_empty(), "{:?}", containers_of(&uid));
}

/// SIGTERM stops the server even while a client holds a request open (here
/// half a request header): requests get a bounded time to finish, then the
/// process exits 0 instead of waiting on the client for ever.
#[test]
fn sigterm_is_not_held_up_by_a_request_left_open() {
    use std::io::Write as _;
    let dir = workdir();
    let mut s = server(dir.path());
    let addr = s.url.trim_start_matches("http://").to_owned();
    let mut open = std::net::TcpStream::connect(&addr).unwrap();
    open.write_all(format!("GET /api/v1/workflows/argo HTTP/1.1\r\nhost: {addr}\r\n").as_bytes())
        .unwrap();
    // The server has served another request since, so it has the connection.
    ok(&argon(&s, &["list"]));
    let status = Command::new("kill")
        .args(["-TERM", &s.child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(exit) = s.child.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "argon server still running 30 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit}");
    drop(open);
}

/// A file of several kinds: `argon apply` stores the templates and cron
/// workflows and names what it skipped; `argon submit` submits the
/// Workflows and names what it skipped and why.
#[test]
fn apply_stores_templates_and_submit_says_what_it_skipped() {
    let dir = workdir();
    let s = server(dir.path());
    let file = dir.path().join("mixed.yaml");
    std::fs::write(
        &file,
        "apiVersion: argoproj.io/v1alpha1
kind: WorkflowTemplate
metadata:
  name: lib
spec:
  templates:
    - name: say
      container: {image: alpine, command: [echo, hi]}
---
apiVersion: argoproj.io/v1alpha1
kind: CronWorkflow
metadata:
  name: nightly
spec:
  schedule: '0 3 * * *'
  workflowSpec:
    workflowTemplateRef: {name: lib}
    entrypoint: say
---
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata:
  generateName: use-lib-
spec:
  entrypoint: main
  templates:
    - name: main
      steps:
        - - name: s
            templateRef: {name: lib, template: say}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
",
    )
    .unwrap();
    let f = file.to_str().unwrap();

    let out = argon(&s, &["apply", f]);
    let stdout = ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("WorkflowTemplate 'lib' stored"), "{stdout}");
    assert!(stdout.contains("CronWorkflow 'nightly' stored"), "{stdout}");
    assert!(
        stderr.contains(&format!(
            "{f}:20: skipped Workflow 'use-lib-': a Workflow runs once; start it with argon submit"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{f}:33: skipped: ConfigMap (v1): Argon skips it as a manifest"
        )),
        "{stderr}"
    );
    assert!(ok(&argon(&s, &["template", "list"])).contains("lib"));
    // Applying again replaces.
    ok(&argon(&s, &["apply", f]));

    let out = argon(&s, &["submit", f, "-o", "json"]);
    let stdout = ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let wf: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    let name = wf["metadata"]["name"].as_str().unwrap().to_string();
    assert!(
        stderr.contains(&format!("{f}:20: submitted Workflow '{name}'")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!(
            "{f}:1: skipped WorkflowTemplate 'lib': argon submit runs Workflows; store it with argon apply"
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{f}:10: skipped CronWorkflow 'nightly'")),
        "{stderr}"
    );
    assert!(stderr.contains(&format!("{f}:33: skipped: ConfigMap")), "{stderr}");
    let done = wait_phase(&s, &name, |w| {
        w["status"]["phase"] == "Succeeded" || w["status"]["phase"] == "Failed"
    });
    assert_eq!(done["status"]["phase"], "Succeeded", "{done:#}");

    // Nothing to apply is an error.
    let only_wf = dir.path().join("wf.yaml");
    std::fs::write(
        &only_wf,
        std::fs::read_to_string(&file).unwrap().split("---\n").nth(2).unwrap(),
    )
    .unwrap();
    let out = argon(&s, &["apply", only_wf.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("nothing to apply"));
}
