//! What the bubblewrap sandbox refuses a step: each escape a new user tried
//! (reading /etc/shadow, writing into /root and /etc, reaching the API on
//! 127.0.0.1) and the rest of what the README promises.

mod common;

use argon_crds::workflow::WorkflowPhase;
use argon_engine::ExecutorKind;
use common::*;

fn wf(body: &str) -> argon_crds::workflow::Workflow {
    workflow_with_spec("s-", body)
}

fn step(name: &str, script: &str) -> String {
    format!(
        "  - name: {name}\n    container:\n      image: debian\n      command: [bash, -c]\n      args:\n      - |\n{}\n",
        script
            .lines()
            .map(|l| format!("        {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    )
}

#[tokio::test]
async fn the_sandbox_refuses_each_escape() {
    let h = harness();
    assert_eq!(h.engine.executor_kind(), ExecutorKind::Sandbox);
    let state = h.engine.config().state_dir.display().to_string();
    let host_tmp = tempfile::NamedTempFile::new().unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    let checks = [
        (
            "shadow",
            "for f in /etc/shadow /etc/gshadow; do head -c1 $f >/dev/null 2>&1 && echo read $f || echo refused; done"
                .to_string(),
            "refused\nrefused",
        ),
        (
            "writes",
            "for p in /usr/x /etc/x /x /root/x; do (echo > $p) 2>/dev/null && echo \"wrote $p\"; done; echo done"
                .to_string(),
            "done",
        ),
        (
            "home",
            "ls /root /home 2>&1 | sed 's/^ls: //'".to_string(),
            "cannot access '/root': No such file or directory\ncannot access '/home': No such file or directory",
        ),
        (
            "state",
            format!(
                "test -e {state} && echo sees state; test -e {} && echo sees host tmp; echo done",
                host_tmp.path().display()
            ),
            "done",
        ),
        (
            "network",
            format!("(echo hi > /dev/tcp/127.0.0.1/{port}) 2>/dev/null && echo reached || echo refused"),
            "refused",
        ),
        ("uid", "id -u; id -g".to_string(), "65534\n65534"),
        (
            "privileges",
            "grep -E '^(NoNewPrivs|CapEff)' /proc/self/status | tr -s '\\t' ' '".to_string(),
            "CapEff: 0000000000000000\nNoNewPrivs: 1",
        ),
        ("files", "ulimit -n; ulimit -c".to_string(), "1024\n0"),
        (
            "own-tmp",
            "echo mine > /tmp/f && cat /tmp/f && pwd".to_string(),
            "mine\n/tmp",
        ),
    ];
    let mut body = String::from("  entrypoint: main\n  templates:\n  - name: main\n    steps:\n    - -");
    for (i, (name, _, _)) in checks.iter().enumerate() {
        if i > 0 {
            body.push_str("      -");
        }
        body.push_str(&format!(" {{name: {name}, template: {name}}}\n"));
    }
    for (name, script, _) in &checks {
        body.push_str(&step(name, script));
    }
    let w = run(&h.engine, wf(&body), &[]).await;
    assert_eq!(phase(&w), Some(WorkflowPhase::Succeeded), "{}", dump(&w));
    for (name, _, expected) in &checks {
        assert_eq!(result(node(&w, name)), *expected, "check {name}");
    }
    assert!(listener.accept().is_err(), "nothing reached the host's loopback");

    // A memory limit is an address-space limit: the allocation fails.
    let w = run(
        &h.engine,
        wf("  entrypoint: memory\n  templates:\n  - name: memory\n    container:\n      image: debian\n      command: [python3, -c, \"b = bytearray(512 << 20)\"]\n      resources: {limits: {memory: 64Mi}}\n"),
        &[],
    )
    .await;
    assert_eq!(phase(&w), Some(WorkflowPhase::Failed), "{}", dump(&w));
    assert!(message(&w).contains("MemoryError"), "{}", message(&w));
}

#[tokio::test]
async fn host_network_is_the_opt_in() {
    let h = harness();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let accepted = tokio::spawn(async move { listener.accept().await.is_ok() });
    let w = run(
        &h.engine,
        wf(&format!(
            "  entrypoint: main\n  hostNetwork: true\n  templates:\n{}",
            step("main", &format!("echo hi > /dev/tcp/127.0.0.1/{port} && echo reached"))
        )),
        &[],
    )
    .await;
    assert_eq!(phase(&w), Some(WorkflowPhase::Succeeded), "{}", dump(&w));
    assert!(accepted.await.unwrap());
}
