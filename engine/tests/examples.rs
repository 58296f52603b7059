//! Every workflow of examples/workflows/ runs to its expected phase with its
//! expected outputs (random ones checked against the set of allowed outcomes).

mod common;

use argon_crds::workflow::{NodePhase, WorkflowPhase};
use common::*;

#[tokio::test]
async fn hello_world_says_hello() {
    let h = harness();
    let wf = run(&h.engine, workflow_of(example("hello-world.yaml")), &[]).await;
    assert_eq!(phase(&wf), Some(WorkflowPhase::Succeeded), "{}", dump(&wf));
    let name = wf.metadata.name.clone().unwrap();
    assert!(name.starts_with("hello-world-") && name.len() == "hello-world-".len() + 5);
    assert_eq!(result(node(&wf, &name)), "< hello world >");
}

#[tokio::test]
async fn a_missing_command_names_the_image() {
    let h = harness_with(|c| c.extra_path.clear());
    let wf = run(&h.engine, workflow_of(example("hello-world.yaml")), &[]).await;
    assert_eq!(phase(&wf), Some(WorkflowPhase::Failed));
    assert_eq!(
        message(&wf),
        "cowsay: not found; image docker/whalesay:latest is not run by the sandbox or host executor"
    );
}

#[tokio::test]
async fn coinflip_takes_the_branch_of_its_result() {
    let h = harness();
    let wf = run(&h.engine, workflow_of(example("coinflip.yaml")), &[]).await;
    assert_eq!(phase(&wf), Some(WorkflowPhase::Succeeded), "{}", dump(&wf));
    let flip = result(node(&wf, "flip-coin"));
    assert!(flip == "heads" || flip == "tails", "{flip}");
    let (ran, skipped) = if flip == "heads" {
        ("heads", "tails")
    } else {
        ("tails", "heads")
    };
    assert_eq!(node(&wf, ran).phase, Some(NodePhase::Succeeded));
    assert_eq!(result(node(&wf, ran)), format!("it was {ran}"));
    assert_eq!(node(&wf, skipped).phase, Some(NodePhase::Skipped));
}

#[tokio::test]
async fn coinflip_recursive_flips_until_heads() {
    let h = harness();
    let wf = run(&h.engine, workflow_of(example("coinflip-recursive.yaml")), &[]).await;
    assert_eq!(phase(&wf), Some(WorkflowPhase::Succeeded), "{}", dump(&wf));
    let flips = nodes(&wf, "flip-coin");
    let heads = flips.iter().filter(|n| result(n) == "heads").count();
    assert_eq!(heads, 1, "exactly the last flip is heads");
    assert_eq!(
        nodes(&wf, "tails")
            .iter()
            .filter(|n| n.phase == Some(NodePhase::Succeeded))
            .count(),
        flips.len() - 1
    );
    let said: Vec<_> = nodes(&wf, "heads")
        .into_iter()
        .filter(|n| n.phase == Some(NodePhase::Succeeded))
        .collect();
    assert_eq!(said.len(), 1);
    assert_eq!(result(said[0]), "it was heads");
}

#[tokio::test]
async fn loops_run_once_per_item() {
    let h = harness();
    let wf = run(&h.engine, workflow_of(example("loops.yaml")), &[]).await;
    assert_eq!(phase(&wf), Some(WorkflowPhase::Succeeded), "{}", dump(&wf));
    assert_eq!(
        result(node(&wf, "print-message(0:hello kubernetes)")),
        "< hello kubernetes >"
    );
    assert_eq!(result(node(&wf, "print-message(1:hello argo)")), "< hello argo >");
}

#[tokio::test]
async fn loops_over_maps_expose_item_keys() {
    let h = harness();
    let wf = run(&h.engine, workflow_of(example("loops-maps.yaml")), &[]).await;
    assert_eq!(phase(&wf), Some(WorkflowPhase::Succeeded), "{}", dump(&wf));
    let n = node(&wf, "test-linux(0:image:debian,tag:9.1)");
    let inputs = n.inputs.as_ref().unwrap();
    assert_eq!(inputs.parameter("image").unwrap().value_or_default(), Some("debian"));
    assert_eq!(inputs.parameter("tag").unwrap().value_or_default(), Some("9.1"));
    assert!(result(n).contains("NAME="), "cat /etc/os-release ran");
    assert_eq!(nodes(&wf, "test-linux(3:image:ubuntu,tag:17.10)").len(), 1);
}

#[tokio::test]
async fn loops_param_fans_out_over_a_generated_list() {
    let h = harness();
    // 20 to 30 seconds of sleep each, in parallel: the example as written.
    let wf = run(&h.engine, workflow_of(example("loops-param.yaml")), &[]).await;
    assert_eq!(phase(&wf), Some(WorkflowPhase::Succeeded), "{}", dump(&wf));
    assert_eq!(
        result(node(&wf, "generate")),
        "[20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30]"
    );
    for (i, n) in (20..=30).enumerate() {
        let step = node(&wf, &format!("sleep({i}:{n})"));
        assert_eq!(result(step), format!("sleeping for {n} seconds\ndone"));
    }
}

#[tokio::test]
async fn dag_diamond_runs_in_dependency_order() {
    let h = harness();
    let wf = run(&h.engine, workflow_of(example("dag-diamond.yaml")), &[]).await;
    assert_eq!(phase(&wf), Some(WorkflowPhase::Succeeded), "{}", dump(&wf));
    for t in ["A", "B", "C", "D"] {
        assert_eq!(result(node(&wf, t)), t);
    }
    let at = |t: &str, start: bool| {
        let n = node(&wf, t);
        if start {
            n.started_at.clone().unwrap().0
        } else {
            n.finished_at.clone().unwrap().0
        }
    };
    assert!(at("B", true) >= at("A", false));
    assert!(at("C", true) >= at("A", false));
    assert!(at("D", true) >= at("B", false) && at("D", true) >= at("C", false));
}

#[tokio::test]
async fn dag_multiroot_starts_both_roots() {
    let h = harness();
    let wf = run(&h.engine, workflow_of(example("dag-multiroot.yaml")), &[]).await;
    assert_eq!(phase(&wf), Some(WorkflowPhase::Succeeded), "{}", dump(&wf));
    for t in ["A", "B", "C", "D"] {
        assert_eq!(result(node(&wf, t)), t);
    }
    let d = node(&wf, "D").started_at.clone().unwrap().0;
    assert!(d >= node(&wf, "B").finished_at.clone().unwrap().0);
}

#[tokio::test]
async fn scripts_in_three_languages_feed_their_results_on() {
    let h = harness();
    let wf = run(&h.engine, workflow_of(example("scripts.yaml")), &[]).await;
    assert_eq!(phase(&wf), Some(WorkflowPhase::Succeeded), "{}", dump(&wf));
    for (generator, print, tag) in [
        ("generate-from-bash", "print-for-bash", "BASH"),
        ("generate-from-python", "print-for-python", "PY"),
        ("generate-from-javascript", "print-for-javascript", "JS"),
    ] {
        let n: i64 = result(node(&wf, generator))
            .parse()
            .unwrap_or_else(|_| panic!("{generator}: {}", dump(&wf)));
        assert!((0..=101).contains(&n), "{generator} gave {n}");
        assert_eq!(result(node(&wf, print)), format!("result was: [{tag}] {n}"));
    }
}

#[tokio::test]
async fn output_parameter_is_read_from_its_file() {
    let h = harness();
    let wf = run(&h.engine, workflow_of(example("output-parameter.yaml")), &[]).await;
    let generated = node(&wf, "generate-parameter");
    let out = generated.outputs.as_ref().unwrap();
    assert_eq!(out.parameters[0].value_or_default(), Some("hello world"));
    // The consumer runs /usr/local/bin/argosay from the yky8/argosay image, which is not on this machine.
    assert_eq!(phase(&wf), Some(WorkflowPhase::Failed));
    assert_eq!(
        message(&wf),
        "/usr/local/bin/argosay: not found; image yky8/argosay:v2 is not run by the sandbox or host executor"
    );
    let consumer = node(&wf, "consume-parameter");
    assert_eq!(
        consumer
            .inputs
            .as_ref()
            .unwrap()
            .parameter("message")
            .unwrap()
            .value_or_default(),
        Some("hello world")
    );
}

#[tokio::test]
async fn artifact_passing_hands_the_file_on() {
    let h = harness();
    let wf = run(&h.engine, workflow_of(example("artifact-passing.yaml")), &[]).await;
    // argosay is missing, but the pipeline ends with tee: the step succeeds with an empty file.
    assert_eq!(phase(&wf), Some(WorkflowPhase::Succeeded), "{}", dump(&wf));
    let generated = node(&wf, "generate-artifact");
    let art = &generated.outputs.as_ref().unwrap().artifacts[0];
    assert_eq!(art.name, "hello-art");
    assert!(
        art.location
            .s3
            .as_ref()
            .unwrap()
            .key
            .as_ref()
            .unwrap()
            .ends_with("hello-art.tgz")
    );
    assert_eq!(node(&wf, "consume-artifact").phase, Some(NodePhase::Succeeded));
}

#[tokio::test]
async fn suspend_template_waits_for_resume_then_its_delay() {
    let h = harness();
    let (ns, name) = submit(&h.engine, workflow_of(example("suspend-template.yaml")), &[]).await;
    let wf = wait_until(&h.engine, &ns, &name, std::time::Duration::from_secs(30), |w| {
        nodes(w, "approve")
            .first()
            .is_some_and(|n| n.phase == Some(NodePhase::Running))
    })
    .await;
    assert_eq!(node(&wf, "build").phase, Some(NodePhase::Succeeded));
    assert!(nodes(&wf, "delay").is_empty(), "nothing runs past the suspend");
    h.engine
        .act_on(&ns, &name, argon_client::WorkflowAction::Resume)
        .await
        .unwrap();
    let wf = wait_done(&h.engine, &ns, &name).await;
    assert_eq!(phase(&wf), Some(WorkflowPhase::Succeeded), "{}", dump(&wf));
    let delay = node(&wf, "delay");
    let waited = delay.finished_at.clone().unwrap().0 - delay.started_at.clone().unwrap().0;
    assert!(waited.get_seconds() >= 19, "the delay lasts its 20 seconds: {waited}");
    assert_eq!(node(&wf, "release").phase, Some(NodePhase::Succeeded));
}

#[tokio::test]
async fn resource_templates_need_a_cluster() {
    let h = harness();
    let wf = run(&h.engine, workflow_of(example("resource-job.yaml")), &[]).await;
    assert_eq!(phase(&wf), Some(WorkflowPhase::Error));
    assert!(message(&wf).contains("need a cluster"), "{}", message(&wf));
}

#[tokio::test]
async fn sidecars_need_a_container_executor() {
    let h = harness();
    let wf = run(&h.engine, workflow_of(example("sidecar-nginx.yaml")), &[]).await;
    assert_eq!(phase(&wf), Some(WorkflowPhase::Failed));
    assert_eq!(
        message(&wf),
        "sidecar 'nginx' (image nginx:1.13) needs a container executor (--executor podman or docker)"
    );
}

#[tokio::test]
async fn daemon_steps_need_a_container_executor() {
    let h = harness();
    let wf = run(&h.engine, workflow_of(example("daemon-step.yaml")), &[]).await;
    assert_eq!(phase(&wf), Some(WorkflowPhase::Failed), "{}", dump(&wf));
    assert!(
        message(&wf).starts_with("daemon steps need a container executor (--executor podman or docker)"),
        "{}",
        message(&wf)
    );
}

#[tokio::test]
async fn combined_workflow_calls_workflow_templates() {
    let h = harness();
    store_templates(&h.engine, "whalesay-template.yaml").await;
    store_templates(&h.engine, "congratulations-template.yaml").await;
    let wf = run(&h.engine, workflow_of(example("combined-workflow.yaml")), &[]).await;
    assert_eq!(phase(&wf), Some(WorkflowPhase::Succeeded), "{}", dump(&wf));
    assert_eq!(wf.metadata.namespace.as_deref(), Some("argo-events"));
    assert_eq!(result(node(&wf, "whalesay")), "< hello world >");
    assert_eq!(result(node(&wf, "congratulations")), "Congratulations!");
    assert_eq!(
        node(&wf, "whalesay").template_ref.as_ref().unwrap().name,
        "whalesay-template"
    );
}

#[tokio::test]
async fn status_workflow_branches_on_the_status_of_a_random_task() {
    let h = harness();
    store_templates(&h.engine, "whalesay-template.yaml").await;
    store_templates(&h.engine, "random-status-template.yaml").await;
    let wf = run(&h.engine, workflow_of(example("status-workflow.yaml")), &[]).await;
    assert_eq!(phase(&wf), Some(WorkflowPhase::Succeeded), "{}", dump(&wf));
    let status = node(&wf, "check-status").phase.unwrap();
    assert!(matches!(status, NodePhase::Succeeded | NodePhase::Failed));
    let (ran, skipped) = if status == NodePhase::Succeeded {
        ("success-path", "failure-path")
    } else {
        ("failure-path", "success-path")
    };
    assert_eq!(node(&wf, ran).phase, Some(NodePhase::Succeeded));
    assert_eq!(result(node(&wf, ran)), format!("< {ran} >"));
    assert_eq!(node(&wf, skipped).phase, Some(NodePhase::Skipped));
}

#[tokio::test]
async fn webhook_workflow_needs_its_arguments() {
    let h = harness();
    let err = h
        .engine
        .submit_workflow("", workflow_of(example("webhook-whalesay.yaml")), Default::default())
        .unwrap_err();
    assert!(err.to_string().contains("parameter 'message' has no value"), "{err}");
    let wf = run(
        &h.engine,
        workflow_of(example("webhook-whalesay.yaml")),
        &[("message", "hi"), ("who", "you")],
    )
    .await;
    assert_eq!(phase(&wf), Some(WorkflowPhase::Succeeded), "{}", dump(&wf));
    let name = wf.metadata.name.clone().unwrap();
    assert_eq!(result(node(&wf, &name)), "< hi you >");
    assert_eq!(
        wf.spec.ttl_strategy.as_ref().unwrap().seconds_after_completion,
        Some(600)
    );
}

#[tokio::test]
async fn hardwired_artifacts_come_from_git_and_http() {
    let h = harness();
    // The example's git repository and URL, served from this machine.
    let repo = h.dir.path().join("argo-src");
    std::fs::create_dir_all(&repo).unwrap();
    std::fs::write(repo.join("README.md"), "argo\n").unwrap();
    let git = |args: &[&str]| {
        let ok = std::process::Command::new("git")
            .args([
                "-c",
                "user.name=t",
                "-c",
                "user.email=t@t",
                "-c",
                "init.defaultBranch=main",
            ])
            .args(args)
            .current_dir(&repo)
            .output()
            .unwrap();
        assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "init"]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route("/kubectl", axum::routing::get(|| async { "#!/bin/sh\necho kubectl\n" }));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let text = std::fs::read_to_string(repo_root().join("examples/workflows/hardwired-artifact.yaml"))
        .unwrap()
        .replace(
            "https://github.com/argoproj/argo-workflows.git",
            &format!("file://{}", repo.display()),
        )
        .replace(
            "https://storage.googleapis.com/kubernetes-release/release/v1.8.0/bin/linux/amd64/kubectl",
            &format!("http://{addr}/kubectl"),
        );
    let wf = run(&h.engine, workflow_of(manifests(&text)), &[]).await;
    let name = wf.metadata.name.clone().unwrap();
    assert_eq!(phase(&wf), Some(WorkflowPhase::Succeeded), "{}", dump(&wf));
    let out = result(node(&wf, &name));
    assert!(out.contains("README.md"), "{out}");
    assert!(out.contains("/bin/kubectl"), "{out}");
}

#[tokio::test]
async fn build_image_template_needs_its_git_credentials() {
    let h = harness();
    store_templates(&h.engine, "build-image-template.yaml").await;
    let wf = workflow_of(manifests(
        "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata:\n  generateName: build-\nspec:\n  workflowTemplateRef:\n    name: build-image\n",
    ));
    let wf = run(&h.engine, wf, &[("branch", "dev")]).await;
    assert_eq!(phase(&wf), Some(WorkflowPhase::Error), "{}", dump(&wf));
    assert!(message(&wf).contains("private-git-creds"), "{}", message(&wf));
    assert_eq!(
        wf.metadata
            .labels
            .as_ref()
            .unwrap()
            .get(argon_client::api::WORKFLOW_TEMPLATE_LABEL)
            .map(String::as_str),
        Some("build-image")
    );
    let mut runs = argon_client::list::ListOptions::default();
    runs.and_label(&argon_client::api::template_selector("build-image"));
    let runs = argon_client::WorkflowAdmin::list(h.engine.as_ref(), "", &runs)
        .await
        .unwrap();
    assert_eq!(runs.items.len(), 1);
}

#[tokio::test]
async fn security_context_runs_as_its_user() {
    let h = harness();
    store_templates(&h.engine, "security-context-template.yaml").await;
    let wf = workflow_of(manifests(
        "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata:\n  generateName: non-root-\nspec:\n  workflowTemplateRef:\n    name: non-root-hello\n",
    ));
    let wf = run(&h.engine, wf, &[]).await;
    assert_eq!(phase(&wf), Some(WorkflowPhase::Succeeded), "{}", dump(&wf));
    let name = wf.metadata.name.clone().unwrap();
    assert_eq!(result(node(&wf, &name)), "1000");
}

#[tokio::test]
async fn cron_workflow_submits_one_run_per_tick() {
    let h = harness();
    let mut cron = match example("cron-workflow.yaml").remove(0) {
        argon_crds::manifest::Manifest::CronWorkflow(c) => *c,
        _ => panic!("a CronWorkflow"),
    };
    // Created half a minute before a minute boundary; the engine ticks just after it.
    let boundary = chrono::DateTime::from_timestamp(chrono::Utc::now().timestamp() / 60 * 60, 0).unwrap();
    cron.metadata.creation_timestamp = Some(argon_engine::time::from_chrono(
        boundary - chrono::Duration::seconds(30),
    ));
    h.engine.put_cron_workflow("", cron).unwrap();
    let now = boundary + chrono::Duration::seconds(1);
    argon_engine::cron::tick(&h.engine, now).await.unwrap();
    argon_engine::cron::tick(&h.engine, now).await.unwrap();
    let runs = h
        .engine
        .list_workflows("", Some((argon_engine::CRON_WORKFLOW_LABEL, "hello-world")))
        .unwrap();
    assert_eq!(runs.len(), 1, "one run per scheduled time");
    let name = runs[0].metadata.name.clone().unwrap();
    let wf = wait_done(&h.engine, "default", &name).await;
    assert_eq!(phase(&wf), Some(WorkflowPhase::Succeeded), "{}", dump(&wf));
    let said = result(node(&wf, &name));
    assert!(said.starts_with("< 🕓 hello world. Scheduled on: 20"), "{said}");
}
