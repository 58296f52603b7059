//! How workflows fail, retry, time out, pause and stop; what is refused at
//! submission; idempotent submission; exit handlers; parallelism; restarts.
//!
//! Longer than most files: one test per behaviour, sharing the harness, kept
//! together as the engine's behaviour spec.

mod common;

use std::sync::Arc;
use std::time::Duration;

use argon_client::{SubmitOptions, WorkflowAction};
use argon_crds::workflow::{NodePhase, NodeType, WorkflowPhase};
use argon_engine::{Engine, EngineConfig};
use common::*;

fn wf(body: &str) -> argon_crds::workflow::Workflow {
    workflow_with_spec("t-", body)
}

#[tokio::test]
async fn a_failing_step_fails_the_workflow_with_its_message() {
    let h = harness();
    let w = run(
        &h.engine,
        wf(r#"
  entrypoint: main
  templates:
  - name: main
    container:
      image: alpine
      command: [sh, -c, "echo about to fail; echo disk full >&2; exit 3"]
"#),
        &[],
    )
    .await;
    assert_eq!(phase(&w), Some(WorkflowPhase::Failed));
    assert_eq!(message(&w), "Error (exit code 3): disk full");
    let name = w.metadata.name.clone().unwrap();
    assert_eq!(
        node(&w, &name).outputs.as_ref().unwrap().exit_code.as_deref(),
        Some("3")
    );
    let (_, logs) = h.engine.logs("", &name, 0).unwrap();
    let lines: Vec<_> = logs.iter().map(|(l, _)| l.line.as_str()).collect();
    assert_eq!(lines.len(), 2);
    assert!(lines.contains(&"about to fail") && lines.contains(&"disk full"));
}

#[tokio::test]
async fn retries_run_until_an_attempt_succeeds() {
    let h = harness();
    let w = run(
        &h.engine,
        wf(r#"
  entrypoint: main
  templates:
  - name: main
    retryStrategy:
      limit: "4"
      backoff: {duration: "10ms", factor: 2}
    container:
      image: alpine
      command: [sh, -c, "echo attempt {{retries}}; [ {{retries}} -ge 2 ]"]
"#),
        &[],
    )
    .await;
    assert_eq!(phase(&w), Some(WorkflowPhase::Succeeded), "{}", dump(&w));
    let name = w.metadata.name.clone().unwrap();
    let root = node(&w, &name);
    assert_eq!(root.type_, Some(NodeType::Retry));
    assert_eq!(root.children.len(), 3);
    assert_eq!(node(&w, &format!("{name}(0)")).phase, Some(NodePhase::Failed));
    assert_eq!(result(node(&w, &format!("{name}(2)"))), "attempt 2");
}

#[tokio::test]
async fn retries_give_up_at_their_limit() {
    let h = harness();
    let w = run(
        &h.engine,
        wf(r#"
  entrypoint: main
  templates:
  - name: main
    retryStrategy: {limit: 2, retryPolicy: Always}
    container: {image: alpine, command: [sh, -c, "exit 1"]}
"#),
        &[],
    )
    .await;
    assert_eq!(phase(&w), Some(WorkflowPhase::Failed));
    assert_eq!(message(&w), "Error (exit code 1) (no more retries left: 3 attempt(s))");
}

#[tokio::test]
async fn a_step_past_its_deadline_is_killed() {
    let h = harness();
    let started = std::time::Instant::now();
    let w = run(
        &h.engine,
        wf(r#"
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: slow, template: slow}
  - name: slow
    activeDeadlineSeconds: 1
    container: {image: alpine, command: [sh, -c, "sleep 30 & sleep 30"]}
"#),
        &[],
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(phase(&w), Some(WorkflowPhase::Failed));
    assert!(
        message(&w).contains("longer than the specified deadline (1s)"),
        "{}",
        message(&w)
    );
}

#[tokio::test]
async fn a_template_timeout_kills_the_process() {
    let h = harness();
    let w = run(
        &h.engine,
        wf(r#"
  entrypoint: main
  templates:
  - name: main
    timeout: 500ms
    script: {image: python, command: [python3], source: "import time\ntime.sleep(30)\n"}
"#),
        &[],
    )
    .await;
    assert_eq!(phase(&w), Some(WorkflowPhase::Failed));
    assert!(message(&w).contains("deadline (0.5s)"), "{}", message(&w));
}

#[tokio::test]
async fn the_workflow_deadline_stops_it_and_runs_the_exit_handler() {
    let h = harness();
    let w = run(
        &h.engine,
        wf(r#"
  entrypoint: main
  activeDeadlineSeconds: 1
  onExit: bye
  templates:
  - name: main
    container: {image: alpine, command: [sleep, "30"]}
  - name: bye
    container: {image: alpine, command: [sh, -c, "echo status={{workflow.status}}"]}
"#),
        &[],
    )
    .await;
    assert_eq!(phase(&w), Some(WorkflowPhase::Failed));
    assert!(message(&w).contains("activeDeadlineSeconds (1s)"), "{}", message(&w));
    let name = w.metadata.name.clone().unwrap();
    assert_eq!(result(node(&w, &format!("{name}.onExit"))), "status=Failed");
}

#[tokio::test]
async fn exit_handlers_see_the_outcome() {
    let h = harness();
    let w = run(
        &h.engine,
        wf(r#"
  entrypoint: main
  onExit: report
  templates:
  - name: main
    container: {image: alpine, command: [sh, -c, "exit 2"]}
  - name: report
    container: {image: alpine, command: [sh, -c, "echo '{{workflow.status}} {{workflow.failures}}'"]}
"#),
        &[],
    )
    .await;
    assert_eq!(phase(&w), Some(WorkflowPhase::Failed));
    let name = w.metadata.name.clone().unwrap();
    let said = result(node(&w, &format!("{name}.onExit")));
    assert!(said.starts_with("Failed [{"), "{said}");
    assert!(said.contains("Error (exit code 2)"), "{said}");
}

#[tokio::test]
async fn suspend_resume_stop_and_terminate() {
    let h = harness();
    let body = r#"
  entrypoint: main
  onExit: bye
  templates:
  - name: main
    steps:
    - - {name: wait, template: wait}
    - - {name: after, template: echo}
  - name: wait
    suspend: {}
  - name: echo
    container: {image: alpine, command: [echo, after]}
  - name: bye
    container: {image: alpine, command: [echo, bye]}
"#;
    // Stop: the suspended step ends, nothing after it runs, the exit handler does.
    let (ns, name) = submit(&h.engine, wf(body), &[]).await;
    wait_until(&h.engine, &ns, &name, Duration::from_secs(20), |w| {
        nodes(w, "wait")
            .first()
            .is_some_and(|n| n.phase == Some(NodePhase::Running))
    })
    .await;
    h.engine.act_on(&ns, &name, WorkflowAction::Stop).await.unwrap();
    let w = wait_done(&h.engine, &ns, &name).await;
    assert_eq!(phase(&w), Some(WorkflowPhase::Failed));
    assert_eq!(message(&w), "Stopped with strategy 'Stop'");
    assert!(nodes(&w, "after").is_empty());
    assert_eq!(result(node(&w, &format!("{name}.onExit"))), "bye");

    // Terminate: no exit handler.
    let (ns, name) = submit(&h.engine, wf(body), &[]).await;
    wait_until(&h.engine, &ns, &name, Duration::from_secs(20), |w| {
        !nodes(w, "wait").is_empty()
    })
    .await;
    h.engine.act_on(&ns, &name, WorkflowAction::Terminate).await.unwrap();
    let w = wait_done(&h.engine, &ns, &name).await;
    assert_eq!(message(&w), "Stopped with strategy 'Terminate'");
    assert!(nodes(&w, &format!("{name}.onExit")).is_empty());

    // Suspend holds the next step back until resume.
    let (ns, name) = submit(&h.engine, wf(body), &[]).await;
    wait_until(&h.engine, &ns, &name, Duration::from_secs(20), |w| {
        !nodes(w, "wait").is_empty()
    })
    .await;
    let w = h.engine.act_on(&ns, &name, WorkflowAction::Suspend).await.unwrap();
    assert_eq!(w.spec.suspend, Some(true));
    let w = h.engine.act_on(&ns, &name, WorkflowAction::Resume).await.unwrap();
    assert_eq!(w.spec.suspend, None);
    let w = wait_done(&h.engine, &ns, &name).await;
    assert_eq!(phase(&w), Some(WorkflowPhase::Succeeded), "{}", dump(&w));
    assert_eq!(result(node(&w, "after")), "after");

    let err = h.engine.act_on(&ns, &name, WorkflowAction::Resume).await.unwrap_err();
    assert!(err.to_string().contains("it is not running"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_sent_as_soon_as_a_suspend_step_shows_running_is_not_lost() {
    // A suspend node shows as Running a moment before it starts waiting; a
    // resume in that moment must still release it. Each step is resumed the
    // instant it is seen, 400 times over, so many resumes hit the moment
    // (without the fix this failed in 5 runs out of 5).
    let h = harness();
    let steps = 40;
    let mut body = String::from("  entrypoint: main\n  templates:\n  - name: main\n    steps:\n");
    for i in 0..steps {
        body.push_str(&format!("    - - {{name: s{i}, template: approve}}\n"));
    }
    body.push_str("  - name: approve\n    suspend: {}\n");
    for _ in 0..10 {
        let (ns, name) = submit(&h.engine, wf(&body), &[]).await;
        for i in 0..steps {
            let step = format!("s{i}");
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            loop {
                // Woken by each change; the short limit only bounds a missed one.
                let w = h.engine.watch(&ns, &name, Duration::from_millis(2)).await.unwrap();
                let running = nodes(&w, &step)
                    .first()
                    .is_some_and(|n| n.phase == Some(NodePhase::Running));
                if running {
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "{step} never ran: {}", dump(&w));
            }
            h.engine.act_on(&ns, &name, WorkflowAction::Resume).await.unwrap();
        }
        let w = wait_done(&h.engine, &ns, &name).await;
        assert_eq!(phase(&w), Some(WorkflowPhase::Succeeded), "{}", dump(&w));
    }
}

#[tokio::test]
async fn retry_reruns_what_failed_and_keeps_what_succeeded() {
    let h = harness_with(|c| c.allow_host_path = true);
    // A host folder the step sees only through a hostPath volume.
    let flag_dir = tempfile::tempdir().unwrap();
    let flag = flag_dir.path().join("go");
    let body = format!(
        r#"
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {{name: first, template: first}}
    - - {{name: second, template: second}}
  - name: first
    container: {{image: alpine, command: [sh, -c, "date +%s%N"]}}
  - name: second
    volumes:
    - {{name: flags, hostPath: {{path: "{dir}"}}}}
    container:
      image: alpine
      command: [sh, -c, "test -e /flags/go"]
      volumeMounts: [{{name: flags, mountPath: /flags}}]
"#,
        dir = flag_dir.path().display()
    );
    let w = run(&h.engine, wf(&body), &[]).await;
    assert_eq!(phase(&w), Some(WorkflowPhase::Failed));
    let first = result(node(&w, "first"));
    let name = w.metadata.name.clone().unwrap();
    std::fs::write(&flag, "").unwrap();
    h.engine.act_on("", &name, WorkflowAction::Retry).await.unwrap();
    let w = wait_done(&h.engine, "", &name).await;
    assert_eq!(phase(&w), Some(WorkflowPhase::Succeeded), "{}", dump(&w));
    assert_eq!(result(node(&w, "first")), first, "the succeeded step is not run again");
}

#[tokio::test]
async fn invalid_workflows_are_refused_with_the_lint_message() {
    let h = harness();
    let cases = [
        (
            r#"
  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - {name: a, template: echo, dependencies: [b]}
      - {name: b, template: echo, dependencies: [a]}
  - name: echo
    container: {image: alpine, command: [echo]}
"#,
            "dag cycle",
        ),
        (
            r#"
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: a, template: ecoh}
  - name: echo
    container: {image: alpine, command: [echo]}
"#,
            "did you mean 'echo'",
        ),
        (
            r#"
  entrypoint: main
  templates:
  - name: main
    inputs: {parameters: [{name: message, value: hi}]}
    container: {image: alpine, command: [echo, "{{inputs.parameters.mesage}}"]}
"#,
            "mesage",
        ),
    ];
    for (body, expected) in cases {
        let err = h.engine.submit_workflow("", wf(body), Default::default()).unwrap_err();
        assert!(matches!(err, argon_client::Error::Invalid(_)), "{err}");
        assert!(err.to_string().contains(expected), "{err} should say {expected}");
        assert!(err.to_string().contains("spec.templates"), "{err} names the field");
    }
    assert!(h.engine.list_workflows("", None).unwrap().is_empty());
}

#[tokio::test]
async fn an_idempotency_key_submits_once() {
    let h = harness();
    let body =
        "  entrypoint: main\n  templates:\n  - name: main\n    container: {image: alpine, command: [\"true\"]}\n";
    let opts = || SubmitOptions {
        idempotency_key: Some("sensor/trigger/event-1".into()),
        ..Default::default()
    };
    let a = h.engine.submit_workflow("", wf(body), opts()).unwrap();
    let b = h.engine.submit_workflow("", wf(body), opts()).unwrap();
    assert!(a.created && !b.created);
    assert_eq!((a.name, a.uid), (b.name, b.uid));
    assert_eq!(h.engine.list_workflows("", None).unwrap().len(), 1);
}

#[tokio::test]
async fn recursion_stops_at_the_depth_limit() {
    let h = harness_with(|c| c.max_depth = 8);
    let w = run(
        &h.engine,
        wf(r#"
  entrypoint: forever
  templates:
  - name: forever
    steps:
    - - {name: again, template: forever}
"#),
        &[],
    )
    .await;
    assert_eq!(phase(&w), Some(WorkflowPhase::Error));
    assert!(
        message(&w).contains("maximum recursion depth exceeded"),
        "{}",
        message(&w)
    );
}

#[tokio::test]
async fn parallelism_bounds_running_steps() {
    let h = harness();
    let w = run(
        &h.engine,
        wf(r#"
  entrypoint: main
  parallelism: 2
  templates:
  - name: main
    steps:
    - - name: nap
        template: nap
        withSequence: {count: "6"}
  - name: nap
    container: {image: alpine, command: [sh, -c, "date +%s%N; sleep 0.3; date +%s%N"]}
"#),
        &[],
    )
    .await;
    assert_eq!(phase(&w), Some(WorkflowPhase::Succeeded), "{}", dump(&w));
    // Each nap prints when it started and ended, in nanoseconds (the
    // workflow's own timestamps have whole seconds only).
    let spans: Vec<(u128, u128)> = w
        .status
        .as_ref()
        .unwrap()
        .nodes
        .values()
        .filter(|n| n.type_ == Some(NodeType::Pod))
        .map(|n| {
            let out = result(n);
            let mut it = out.lines().map(|l| l.trim().parse::<u128>().unwrap());
            (it.next().unwrap(), it.next().unwrap())
        })
        .collect();
    assert_eq!(spans.len(), 6);
    // At most two at once, and two at once did happen.
    let most_at_once = spans
        .iter()
        .map(|&(start, _)| spans.iter().filter(|&&(s, e)| s <= start && start < e).count())
        .max()
        .unwrap();
    assert_eq!(most_at_once, 2, "{spans:?}");
}

#[tokio::test]
async fn expressions_sequences_depends_and_outputs() {
    let h = harness();
    let w = run(
        &h.engine,
        wf(r#"
  entrypoint: main
  arguments:
    parameters: [{name: n, value: "3"}]
  templates:
  - name: main
    dag:
      tasks:
      - name: A
        template: fail
        continueOn: {failed: true}
      - name: B
        depends: A.Failed
        template: echo
        arguments: {parameters: [{name: msg, value: "{{=asInt(workflow.parameters.n) * 2}}"}]}
      - name: C
        depends: A.Succeeded
        template: echo
        arguments: {parameters: [{name: msg, value: never}]}
      - name: D
        depends: B
        template: echo
        withSequence: {count: "{{workflow.parameters.n}}", format: "n%02d"}
        arguments: {parameters: [{name: msg, value: "{{item}}"}]}
      - name: E
        dependencies: [D]
        template: echo
        arguments: {parameters: [{name: msg, value: "{{tasks.D.outputs.parameters.said}}"}]}
    outputs:
      parameters:
      - name: final
        globalName: final
        valueFrom: {parameter: "{{tasks.E.outputs.result}}"}
  - name: fail
    container: {image: alpine, command: [sh, -c, "exit 1"]}
  - name: echo
    inputs: {parameters: [{name: msg, enum: ["6", never, n00, n01, n02, '["n00","n01","n02"]']}]}
    container: {image: alpine, command: [sh, -c, "echo -n {{inputs.parameters.msg}} > /tmp/said; echo {{inputs.parameters.msg}}"]}
    outputs:
      parameters:
      - name: said
        valueFrom: {path: /tmp/said}
"#),
        &[],
    )
    .await;
    assert_eq!(phase(&w), Some(WorkflowPhase::Succeeded), "{}", dump(&w));
    assert_eq!(result(node(&w, "B")), "6");
    assert_eq!(node(&w, "C").phase, Some(NodePhase::Omitted));
    assert_eq!(result(node(&w, "D(2:n02)")), "n02");
    let e = node(&w, "E");
    assert_eq!(
        e.inputs.as_ref().unwrap().parameter("msg").unwrap().value_or_default(),
        Some(r#"["n00","n01","n02"]"#)
    );
    // The shell drops the quotes.
    assert_eq!(result(e), "[n00,n01,n02]");
    let outputs = w.status.as_ref().unwrap().outputs.as_ref().unwrap();
    assert_eq!(outputs.parameters[0].name, "final");
    assert_eq!(outputs.parameters[0].value_or_default(), Some("[n00,n01,n02]"));
}

#[tokio::test]
async fn artifacts_pass_directories_raw_and_unarchived() {
    let h = harness();
    let w = run(
        &h.engine,
        wf(r#"
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: make, template: make}
    - - name: use
        template: use
        arguments:
          artifacts:
          - {name: tree, from: "{{steps.make.outputs.artifacts.tree}}"}
          - {name: plain, from: "{{steps.make.outputs.artifacts.plain}}"}
          - {name: note, raw: {data: "from raw\n"}}
  - name: make
    container: {image: alpine, command: [sh, -c, "mkdir -p /work/out/sub && echo a > /work/out/a && echo b > /work/out/sub/b && echo p > /tmp/p"]}
    outputs:
      artifacts:
      - {name: tree, path: /work/out, archive: {tar: {compressionLevel: 1}}}
      - {name: plain, path: /tmp/p, archive: {none: {}}}
  - name: use
    inputs:
      artifacts:
      - {name: tree, path: /data/tree}
      - {name: plain, path: /tmp/plain}
      - {name: note, path: /tmp/note.sh, mode: "0755"}
    container: {image: alpine, command: [sh, -c, "cat /data/tree/a /data/tree/sub/b /tmp/plain /tmp/note.sh; test -x /tmp/note.sh && echo executable"]}
"#),
        &[],
    )
    .await;
    assert_eq!(phase(&w), Some(WorkflowPhase::Succeeded), "{}", dump(&w));
    assert_eq!(result(node(&w, "use")), "a\nb\np\nfrom raw\nexecutable");
}

#[tokio::test]
async fn parallel_steps_writing_the_same_tmp_file_do_not_collide() {
    let h = harness();
    let w = run(
        &h.engine,
        wf(r#"
  entrypoint: main
  templates:
  - name: main
    steps:
    - - name: write
        template: write
        withItems: [a, b, c, d, e, f]
        arguments: {parameters: [{name: v, value: "{{item}}"}]}
  - name: write
    inputs: {parameters: [{name: v}]}
    container: {image: alpine, command: [sh, -c, "echo {{inputs.parameters.v}} > /tmp/hello_world.txt; sleep 0.2; cat /tmp/hello_world.txt"]}
"#),
        &[],
    )
    .await;
    assert_eq!(phase(&w), Some(WorkflowPhase::Succeeded), "{}", dump(&w));
    for (i, v) in ["a", "b", "c", "d", "e", "f"].iter().enumerate() {
        assert_eq!(result(node(&w, &format!("write({i}:{v})"))), *v);
    }
}

#[test]
fn a_restarted_engine_resumes_its_workflows() {
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        let mut c = EngineConfig::new(dir.path().join("state"));
        c.default_namespace = "default".into();
        c.executor = argon_engine::ExecutorChoice::Sandbox;
        c
    };
    let body = |retry: &str, command: &str| {
        wf(&format!(
            r#"
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {{name: before, template: quick}}
    - - {{name: long, template: long}}
    - - {{name: approve, template: approve}}
    - - {{name: after, template: quick}}
  - name: quick
    container: {{image: alpine, command: [echo, ok]}}
  - name: long
    {retry}
    container: {{image: alpine, command: [sh, -c, "{command}"]}}
  - name: approve
    suspend: {{}}
"#
        ))
    };
    // First engine: start two workflows and lose the process while `long` runs.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (plain, retried) = rt.block_on(async {
        let engine = Engine::open(config()).unwrap();
        let a = submit(&engine, body("", "sleep 2; echo done"), &[]).await;
        let b = submit(
            &engine,
            body(
                "retryStrategy: {limit: 2}",
                "if [ {{retries}} = 0 ]; then sleep 2; exit 1; fi; echo done",
            ),
            &[],
        )
        .await;
        for (ns, name) in [&a, &b] {
            wait_until(&engine, ns, name, Duration::from_secs(20), |w| {
                w.status.iter().flat_map(|s| s.nodes.values()).any(|n| {
                    n.display_name.as_deref().is_some_and(|d| d.starts_with("long"))
                        && n.type_ == Some(NodeType::Pod)
                        && n.phase == Some(NodePhase::Running)
                })
            })
            .await;
        }
        (a.1, b.1)
    });
    rt.shutdown_timeout(Duration::from_secs(1));

    // Second engine on the same state dir.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let engine = Engine::open(config()).unwrap();
        engine.resume_unfinished().unwrap();
        // A sandboxed step dies with the engine and runs again from the start.
        let approving = |w: &argon_crds::workflow::Workflow| {
            nodes(w, "approve")
                .first()
                .is_some_and(|n| n.phase == Some(NodePhase::Running))
        };
        let w = wait_until(&engine, "default", &plain, Duration::from_secs(20), approving).await;
        assert_eq!(result(node(&w, "before")), "ok");
        assert_eq!(node(&w, "long").phase, Some(NodePhase::Succeeded));
        assert_eq!(result(node(&w, "long")), "done");
        assert_eq!(node(&w, "long").message, None);
        engine.act_on("default", &plain, WorkflowAction::Resume).await.unwrap();
        let w = wait_done(&engine, "default", &plain).await;
        assert_eq!(phase(&w), Some(WorkflowPhase::Succeeded), "{}", dump(&w));

        // In a retry, the interrupted attempt runs again and is then retried as usual.
        let w = wait_until(&engine, "default", &retried, Duration::from_secs(20), approving).await;
        assert_eq!(node(&w, "long").phase, Some(NodePhase::Succeeded));
        assert_eq!(node(&w, "long(0)").phase, Some(NodePhase::Failed));
        assert_eq!(result(node(&w, "long(1)")), "done");
        engine
            .act_on("default", &retried, WorkflowAction::Resume)
            .await
            .unwrap();
        let w = wait_done(&engine, "default", &retried).await;
        assert_eq!(phase(&w), Some(WorkflowPhase::Succeeded), "{}", dump(&w));
        let running = w
            .status
            .as_ref()
            .unwrap()
            .nodes
            .values()
            .filter(|n| n.phase == Some(NodePhase::Running))
            .count();
        assert_eq!(running, 0);
    });
}

#[test]
fn a_stopping_engine_lets_sandboxed_steps_finish_and_starts_no_new_one() {
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        let mut c = EngineConfig::new(dir.path().join("state"));
        c.executor = argon_engine::ExecutorChoice::Sandbox;
        c
    };
    let body = wf(r#"
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: first, template: slow}
    - - {name: second, template: quick}
  - name: slow
    container: {image: alpine, command: [sh, -c, "sleep 1; echo finished"]}
  - name: quick
    container: {image: alpine, command: [echo, second]}
"#);
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (ns, name) = rt.block_on(async {
        let engine = Engine::open(config()).unwrap();
        let (ns, name) = submit(&engine, body, &[]).await;
        wait_until(&engine, &ns, &name, Duration::from_secs(20), |w| {
            nodes(w, "first")
                .first()
                .is_some_and(|n| n.phase == Some(NodePhase::Running))
        })
        .await;
        // SIGTERM: the engine's run ends once the running step has finished.
        Arc::clone(&engine).run(async {}).await.unwrap();
        let w = engine.get_workflow(&ns, &name).unwrap();
        assert_eq!(node(&w, "first").phase, Some(NodePhase::Succeeded), "{}", dump(&w));
        assert_eq!(result(node(&w, "first")), "finished");
        assert!(
            nodes(&w, "second").iter().all(|n| n.phase == Some(NodePhase::Pending)),
            "no new step starts: {}",
            dump(&w)
        );
        (ns, name)
    });
    rt.shutdown_timeout(Duration::from_secs(1));
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let engine = Engine::open(config()).unwrap();
        engine.resume_unfinished().unwrap();
        let w = wait_done(&engine, &ns, &name).await;
        assert_eq!(phase(&w), Some(WorkflowPhase::Succeeded), "{}", dump(&w));
        assert_eq!(result(node(&w, "second")), "second");
    });
}

#[test]
fn an_engine_that_stops_writes_nothing_about_the_steps_it_interrupts() {
    // Dropping the runtime cancels the step tasks; the steps and DAG nodes
    // waiting on them must not record that as a failure, or the engine that
    // opens the state next would find the workflows already Failed. (A parent
    // polled in the instant its child is cancelled is rare; the operator's
    // unit test covers that case exactly.)
    let dir = tempfile::tempdir().unwrap();
    let config = || {
        let mut c = EngineConfig::new(dir.path().join("state"));
        c.executor = argon_engine::ExecutorChoice::Sandbox;
        c
    };
    let body = wf(r#"
  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - {name: fan, template: steps}
      - {name: each, template: long, withItems: [1, 2, 3]}
  - name: steps
    steps:
    - - {name: a, template: long}
      - {name: b, template: long}
      - {name: c, template: long}
  - name: long
    container: {image: alpine, command: [sleep, "60"]}
"#);
    let mut names = Vec::new();
    for _ in 0..2 {
        let rt = tokio::runtime::Runtime::new().unwrap();
        let batch = rt.block_on(async {
            let engine = Engine::open(config()).unwrap();
            let mut batch = Vec::new();
            for _ in 0..4 {
                batch.push(submit(&engine, body.clone(), &[]).await);
            }
            for (ns, name) in &batch {
                wait_until(&engine, ns, name, Duration::from_secs(30), |w| {
                    let running = w
                        .status
                        .iter()
                        .flat_map(|s| s.nodes.values())
                        .filter(|n| n.type_ == Some(NodeType::Pod) && n.phase == Some(NodePhase::Running))
                        .count();
                    running == 6
                })
                .await;
            }
            batch
        });
        rt.shutdown_timeout(Duration::from_secs(1));
        names.extend(batch);
    }
    let engine = Engine::open(config()).unwrap();
    for (ns, name) in names {
        let w = engine.get_workflow(&ns, &name).unwrap();
        assert_eq!(phase(&w), Some(WorkflowPhase::Running), "{}", dump(&w));
        for n in w.status.iter().flat_map(|s| s.nodes.values()) {
            assert!(
                matches!(n.phase, Some(NodePhase::Running | NodePhase::Succeeded)),
                "{}",
                dump(&w)
            );
        }
    }
}

#[tokio::test]
async fn ttl_strategy_deletes_finished_workflows() {
    let h = harness();
    let w = run(
        &h.engine,
        wf("  entrypoint: main\n  ttlStrategy: {secondsAfterCompletion: 0}\n  templates:\n  - name: main\n    container: {image: alpine, command: [\"true\"]}\n"),
        &[],
    )
    .await;
    let name = w.metadata.name.clone().unwrap();
    let engine = h.engine.clone();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(engine.run(async {
        let _ = rx.await;
    }));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while h.engine.get_workflow("", &name).is_ok() {
        assert!(std::time::Instant::now() < deadline, "not deleted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = tx.send(());
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn env_from_secrets_working_dir_and_http_templates() {
    let secrets = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(secrets.path().join("creds")).unwrap();
    std::fs::write(secrets.path().join("creds/token"), "t0k3n\n").unwrap();
    let dir = secrets.path().to_path_buf();
    let h = harness_with(move |c| c.secrets = argon_crds::secret::Secrets::new(Some(dir)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/items",
        axum::routing::post(|headers: axum::http::HeaderMap, body: String| async move {
            let auth = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            (axum::http::StatusCode::CREATED, format!("{auth} {body}"))
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let w = run(
        &h.engine,
        wf(&format!(
            r#"
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {{name: env, template: env}}
      - {{name: call, template: call}}
  - name: env
    container:
      image: alpine
      workingDir: /src/here
      command: [sh, -c, "echo $TOKEN $GREETING $(pwd)"]
      env:
      - {{name: GREETING, value: "hi {{{{workflow.name}}}}"}}
      - name: TOKEN
        valueFrom: {{secretKeyRef: {{name: creds, key: token}}}}
  - name: call
    http:
      method: POST
      url: http://{addr}/items
      headers:
      - name: Authorization
        valueFrom: {{secretKeyRef: {{name: creds, key: token}}}}
      body: "from {{{{workflow.name}}}}"
      successCondition: "response.statusCode == 201"
"#
        )),
        &[],
    )
    .await;
    assert_eq!(phase(&w), Some(WorkflowPhase::Succeeded), "{}", dump(&w));
    let name = w.metadata.name.clone().unwrap();
    assert_eq!(result(node(&w, "env")), format!("t0k3n hi {name} /src/here"));
    assert_eq!(node(&w, "call").type_, Some(NodeType::Http));
    assert_eq!(result(node(&w, "call")), format!("t0k3n from {name}"));

    // A missing secret is a clear error.
    let w = run(
        &h.engine,
        wf(r#"
  entrypoint: main
  templates:
  - name: main
    container:
      image: alpine
      command: ["true"]
      env:
      - name: X
        valueFrom: {secretKeyRef: {name: nope, key: k}}
"#),
        &[],
    )
    .await;
    assert_eq!(phase(&w), Some(WorkflowPhase::Error));
    assert!(
        message(&w).contains("secret 'nope' key 'k' not found"),
        "{}",
        message(&w)
    );
}

#[tokio::test]
async fn fail_fast_stops_starting_dag_tasks_and_template_parallelism_holds() {
    let h = harness();
    let w = run(
        &h.engine,
        wf(r#"
  entrypoint: main
  templates:
  - name: main
    dag:
      tasks:
      - {name: bad, template: fail}
      - {name: slow, template: nap}
      - {name: later, template: nap, dependencies: [slow]}
  - name: fail
    container: {image: alpine, command: [sh, -c, "exit 1"]}
  - name: nap
    container: {image: alpine, command: [sleep, "0.5"]}
"#),
        &[],
    )
    .await;
    assert_eq!(phase(&w), Some(WorkflowPhase::Failed));
    assert_eq!(
        node(&w, "slow").phase,
        Some(NodePhase::Succeeded),
        "running tasks finish"
    );
    assert!(nodes(&w, "later").is_empty(), "no new task starts after a failure");

    let w = run(
        &h.engine,
        wf(r#"
  entrypoint: main
  templates:
  - name: main
    parallelism: 1
    steps:
    - - {name: a, template: stamp}
      - {name: b, template: stamp}
      - {name: c, template: stamp}
  - name: stamp
    container: {image: alpine, command: [sleep, "0.2"]}
"#),
        &[],
    )
    .await;
    assert_eq!(phase(&w), Some(WorkflowPhase::Succeeded), "{}", dump(&w));
    let mut spans: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|d| {
            let n = node(&w, d);
            (n.started_at.clone().unwrap().0, n.finished_at.clone().unwrap().0)
        })
        .collect();
    spans.sort();
    assert!(
        spans[1].0 >= spans[0].1 && spans[2].0 >= spans[1].1,
        "one at a time: {spans:?}"
    );
}

#[tokio::test]
async fn cron_forbid_skips_a_tick_while_a_run_is_active() {
    let h = harness();
    let cron = workflow_cron(
        r#"
  schedule: "* * * * *"
  concurrencyPolicy: Forbid
  workflowSpec:
    entrypoint: main
    templates:
    - name: main
      suspend: {}
"#,
    );
    let boundary = chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp() / 60 * 60, 0).unwrap();
    let mut cron = cron;
    cron.metadata.creation_timestamp = Some(argon_engine::time::from_chrono(
        boundary - chrono::Duration::seconds(150),
    ));
    h.engine.put_cron_workflow("", cron).unwrap();
    // Missed ticks are not caught up (no startingDeadlineSeconds); the one on time runs.
    argon_engine::cron::tick(&h.engine, boundary - chrono::Duration::seconds(59))
        .await
        .unwrap();
    assert_eq!(h.engine.list_workflows("", None).unwrap().len(), 1);
    argon_engine::cron::tick(&h.engine, boundary + chrono::Duration::seconds(1))
        .await
        .unwrap();
    let runs = h.engine.list_workflows("", None).unwrap();
    assert_eq!(runs.len(), 1, "Forbid: the suspended run is still active");
}

fn workflow_cron(spec: &str) -> argon_crds::workflow::CronWorkflow {
    match manifests(&format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: CronWorkflow\nmetadata:\n  name: c\nspec:\n{spec}"
    ))
    .remove(0)
    {
        argon_crds::manifest::Manifest::CronWorkflow(c) => *c,
        _ => panic!("a CronWorkflow"),
    }
}

#[tokio::test]
async fn template_defaults_apply_under_each_template() {
    let h = harness();
    let w = run(
        &h.engine,
        wf(r#"
  entrypoint: main
  templateDefaults:
    timeout: 1s
    container:
      env: [{name: FROM_DEFAULTS, value: "yes"}]
  templates:
  - name: main
    steps:
    - - {name: env, template: env}
    - - {name: slow, template: slow}
  - name: env
    container: {image: alpine, command: [sh, -c, "echo $FROM_DEFAULTS"]}
  - name: slow
    script: {image: python, command: [sh], source: "sleep 30"}
"#),
        &[],
    )
    .await;
    assert_eq!(result(node(&w, "env")), "yes");
    assert_eq!(phase(&w), Some(WorkflowPhase::Failed));
    assert!(message(&w).contains("deadline (1s)"), "{}", message(&w));
}

#[tokio::test]
async fn cron_replace_stops_the_active_run_and_history_is_pruned() {
    let h = harness();
    let mut cron = workflow_cron(
        r#"
  schedule: "* * * * *"
  concurrencyPolicy: Replace
  failedJobsHistoryLimit: 1
  workflowSpec:
    entrypoint: main
    templates:
    - name: main
      suspend: {}
"#,
    );
    let boundary = chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp() / 60 * 60, 0).unwrap();
    cron.metadata.creation_timestamp = Some(argon_engine::time::from_chrono(
        boundary - chrono::Duration::seconds(90),
    ));
    h.engine.put_cron_workflow("", cron).unwrap();
    let mut names = Vec::new();
    for t in [
        boundary - chrono::Duration::seconds(59),
        boundary + chrono::Duration::seconds(1),
        boundary + chrono::Duration::seconds(61),
    ] {
        argon_engine::cron::tick(&h.engine, t).await.unwrap();
        let runs = h.engine.list_workflows("", None).unwrap();
        let newest = runs[0].metadata.name.clone().unwrap();
        wait_until(&h.engine, "default", &newest, Duration::from_secs(20), |w| {
            !nodes(w, &newest).is_empty()
        })
        .await;
        names.push(newest);
    }
    // Each tick terminated the run before it; one failed run is kept.
    wait_done(&h.engine, "default", &names[1]).await;
    argon_engine::cron::tick(&h.engine, boundary + chrono::Duration::seconds(62))
        .await
        .unwrap();
    let first = h.engine.get_workflow("default", &names[0]);
    assert!(first.is_err(), "the oldest failed run was pruned");
    let second = wait_done(&h.engine, "default", &names[1]).await;
    assert_eq!(message(&second), "Stopped with strategy 'Terminate'");
    assert!(phase(&h.engine.get_workflow("default", &names[2]).unwrap()).is_some_and(|p| !p.is_completed()));
}

#[tokio::test]
async fn exit_hooks_read_their_own_steps_results_and_steps_know_their_names() {
    let h = harness();
    let w = run(
        &h.engine,
        wf(r#"
  entrypoint: main
  templates:
  - name: main
    steps:
    - - name: make
        template: make
        arguments: {parameters: [{name: who, value: "{{steps.name}}"}]}
        hooks:
          exit:
            template: echo
            arguments:
              parameters:
              - {name: msg, value: "{{steps.make.status}} {{steps.make.outputs.parameters.said}}"}
  - name: make
    inputs: {parameters: [{name: who}]}
    container: {image: alpine, command: [sh, -c, "echo -n made-by-{{inputs.parameters.who}} > /tmp/said"]}
    outputs:
      parameters:
      - name: said
        valueFrom: {path: /tmp/said}
  - name: echo
    inputs: {parameters: [{name: msg}]}
    container: {image: alpine, command: [echo, "{{inputs.parameters.msg}}"]}
"#),
        &[],
    )
    .await;
    assert_eq!(phase(&w), Some(WorkflowPhase::Succeeded), "{}", dump(&w));
    assert_eq!(result(node(&w, "make.onExit")), "Succeeded made-by-make");
}

#[tokio::test]
async fn an_input_artifact_argument_with_a_sub_path_places_that_part_only() {
    let h = harness();
    let w = run(
        &h.engine,
        wf(r#"
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: make, template: make}
    - - name: use
        template: use
        arguments:
          artifacts:
          - {name: message, from: "{{steps.make.outputs.artifacts.dir}}", subPath: message}
  - name: make
    container: {image: alpine, command: [sh, -c, "mkdir -p /tmp/out && echo hello > /tmp/out/message && echo other > /tmp/out/other"]}
    outputs:
      artifacts:
      - {name: dir, path: /tmp/out}
  - name: use
    inputs:
      artifacts:
      - {name: message, path: /tmp/message}
    container: {image: alpine, command: [cat, /tmp/message]}
"#),
        &[],
    )
    .await;
    assert_eq!(phase(&w), Some(WorkflowPhase::Succeeded), "{}", dump(&w));
    assert_eq!(result(node(&w, "use")), "hello");
}

#[tokio::test]
async fn item_fields_are_filled_in_the_when_of_a_with_param_step() {
    let h = harness();
    let w = run(
        &h.engine,
        wf(r#"
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: gen, template: gen}
    - - name: use
        template: echo
        withParam: "{{steps.gen.outputs.result}}"
        when: "{{item.size}} > 1"
        arguments: {parameters: [{name: msg, value: "{{item.name}}"}]}
  - name: gen
    container: {image: alpine, command: [echo, '[{"name": "small", "size": 1}, {"name": "big", "size": 5}]']}
  - name: echo
    inputs: {parameters: [{name: msg}]}
    container: {image: alpine, command: [echo, "{{inputs.parameters.msg}}"]}
"#),
        &[],
    )
    .await;
    assert_eq!(phase(&w), Some(WorkflowPhase::Succeeded), "{}", dump(&w));
    let nodes = &w.status.as_ref().unwrap().nodes;
    let by_display = |d: &str| {
        nodes
            .values()
            .find(|n| n.display_name.as_deref().is_some_and(|x| x.starts_with(d)))
            .unwrap_or_else(|| panic!("no node {d}: {}", dump(&w)))
    };
    assert_eq!(by_display("use(0:").phase, Some(NodePhase::Skipped));
    assert_eq!(result(by_display("use(1:")), "big");
}

#[tokio::test]
async fn expressions_with_closures_span_lines_and_a_bad_one_is_an_error() {
    let h = harness();
    let w = run(
        &h.engine,
        wf(r#"
  entrypoint: main
  arguments:
    parameters:
    - {name: nums, value: "[1, 2, 3, 4]"}
  templates:
  - name: main
    steps:
    - - name: use
        template: echo
        arguments:
          parameters:
          - name: msg
            value: |-
              {{=
                sprig.join(",", map(
                  filter(fromJson(workflow.parameters.nums), {# > 2}),
                  {string(# * 10)}
                ))
              }}
  - name: echo
    inputs: {parameters: [{name: msg}]}
    container: {image: alpine, command: [echo, "{{inputs.parameters.msg}}"]}
"#),
        &[],
    )
    .await;
    assert_eq!(phase(&w), Some(WorkflowPhase::Succeeded), "{}", dump(&w));
    assert_eq!(result(node(&w, "use")), "30,40");

    // One that does not parse is refused at submission, naming it.
    let bad = |value: &str| {
        wf(&format!(
            r#"
  entrypoint: main
  templates:
  - name: main
    steps:
    - - name: use
        template: echo
        arguments:
          parameters:
          - name: msg
            value: "{value}"
  - name: echo
    inputs: {{parameters: [{{name: msg}}]}}
    container: {{image: alpine, command: [echo, "{{{{inputs.parameters.msg}}}}"]}}
"#
        ))
    };
    let e = h
        .engine
        .submit_workflow(
            "",
            bad("{{=\\n  jsonpath(inputs.parameters.x,\\n}}"),
            SubmitOptions::default(),
        )
        .unwrap_err()
        .to_string();
    assert!(e.contains("expression 'jsonpath(inputs.parameters.x,'"), "{e}");
    assert!(e.contains("syntax error"), "{e}");
    assert!(!e.contains("key must be a string"), "{e}");
    // One that parses but cannot be evaluated fails the step, naming it.
    let w = run(&h.engine, bad("{{= nosuchfunction(1) }}"), &[]).await;
    assert_ne!(phase(&w), Some(WorkflowPhase::Succeeded), "{}", dump(&w));
    let msg = dump(&w);
    assert!(
        msg.contains("nosuchfunction(1)") && msg.contains("Unknown function"),
        "{msg}"
    );
}
