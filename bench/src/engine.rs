//! Scenario `engine`: the workflow engine's overhead per step.
//!
//! - chain: a DAG of 100 `true` tasks, each depending on the one before (a
//!   fully sequential run: total time / 100 is the per-step overhead);
//! - fan-out: 1,000 `true` tasks with `parallelism: 50`;
//! - latency: from `submit` to the first step's process running (the step
//!   prints the wall clock as it starts), median and worst of 20;
//! - raw: the same `true` spawned directly, and inside bubblewrap, one after
//!   the other: the floor under the per-step figure.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use argon_crds::workflow::{Workflow, WorkflowPhase};
use argon_engine::{Engine, EngineConfig, SubmitOptions};

use crate::Options;

fn workflow(yaml: &str) -> anyhow::Result<Workflow> {
    let mut report = argon_crds::manifest::LoadReport::default();
    argon_crds::manifest::load_text("bench.yaml", yaml, &mut report);
    if report.has_errors() {
        bail!("bench workflow: {:?}", report.diagnostics);
    }
    report
        .manifests
        .into_iter()
        .find_map(|l| match l.manifest {
            argon_crds::manifest::Manifest::Workflow(w) => Some(*w),
            _ => None,
        })
        .context("no workflow")
}

fn chain(n: usize) -> String {
    let mut s = String::from(
        "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {generateName: chain-}\nspec:\n  entrypoint: main\n  templates:\n  - name: t\n    container: {image: alpine, command: [\"true\"]}\n  - name: main\n    dag:\n      tasks:\n",
    );
    for i in 0..n {
        if i == 0 {
            s.push_str(&format!("      - {{name: t{i}, template: t}}\n"));
        } else {
            s.push_str(&format!(
                "      - {{name: t{i}, template: t, dependencies: [t{}]}}\n",
                i - 1
            ));
        }
    }
    s
}

fn fan_out(n: usize, parallelism: usize) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {{generateName: fan-}}\nspec:\n  entrypoint: main\n  parallelism: {parallelism}\n  templates:\n  - name: t\n    container: {{image: alpine, command: [\"true\"]}}\n  - name: main\n    dag:\n      tasks:\n      - name: t\n        template: t\n        withSequence: {{count: \"{n}\"}}\n"
    )
}

const CLOCK: &str = "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {generateName: clock-}\nspec:\n  entrypoint: main\n  templates:\n  - name: main\n    container: {image: alpine, command: [date, \"+%s%N\"]}\n";

async fn run_to_end(engine: &Engine, wf: Workflow) -> anyhow::Result<(Duration, Workflow)> {
    let started = Instant::now();
    let s = engine.submit_workflow("", wf, SubmitOptions::default())?;
    // Polls the phase (cheap) rather than copying the workflow at each change.
    while !engine
        .phase_of(&s.namespace, &s.name)?
        .is_some_and(|p| p.is_completed())
    {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let took = started.elapsed();
    let w = engine.get_workflow(&s.namespace, &s.name)?;
    let phase = w.status.as_ref().and_then(|s| s.phase);
    if phase != Some(WorkflowPhase::Succeeded) {
        bail!(
            "{} ended {phase:?}: {:?}",
            s.name,
            w.status.as_ref().and_then(|s| s.message.clone())
        );
    }
    Ok((took, w))
}

fn spawn_many(program: &str, args: &[&str], n: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    for _ in 0..n {
        let ok = std::process::Command::new(program).args(args).status()?.success();
        if !ok {
            bail!("{program} failed");
        }
    }
    Ok(started.elapsed())
}

pub async fn run(options: &Options) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let mut config = EngineConfig::new(dir.path().join("state"));
    config.executor = argon_engine::ExecutorChoice::Sandbox;
    let engine = Engine::open(config)?;
    println!("engine: {}", engine.executor_description());

    // Raw limits.
    let n = 100;
    let plain = spawn_many("true", &[], n)?;
    println!(
        "raw      spawn `true` x{n}: {:>8.1} ms total, {:>6.2} ms/step",
        ms(plain),
        ms(plain) / n as f64
    );
    {
        let sandbox_dir = dir.path().join("raw");
        std::fs::create_dir_all(sandbox_dir.join("tmp"))?;
        let tmp = sandbox_dir.join("tmp").display().to_string();
        let bw = spawn_many(
            "bwrap",
            &[
                "--die-with-parent",
                "--ro-bind",
                "/",
                "/",
                "--dev-bind",
                "/dev",
                "/dev",
                "--proc",
                "/proc",
                "--bind",
                &tmp,
                "/tmp",
                "true",
            ],
            n,
        )?;
        println!(
            "raw      bwrap `true` x{n}: {:>8.1} ms total, {:>6.2} ms/step",
            ms(bw),
            ms(bw) / n as f64
        );
    }

    // Chain of 100, best of the rounds.
    let mut best = Duration::MAX;
    for _ in 0..options.rounds {
        let (took, _) = run_to_end(&engine, workflow(&chain(100))?).await?;
        best = best.min(took);
    }
    println!(
        "chain    100 tasks in sequence: {:>8.1} ms total, {:>6.2} ms/step (target: < 3000 ms, <= 10 ms/step)",
        ms(best),
        ms(best) / 100.0
    );

    // The same chain without the sandbox: the engine's own share.
    let plain_dir = dir.path().join("plain");
    let mut config = EngineConfig::new(plain_dir);
    config.executor = argon_engine::ExecutorChoice::Host;
    let unsandboxed = Engine::open(config)?;
    let mut best_plain = Duration::MAX;
    for _ in 0..options.rounds {
        let (took, _) = run_to_end(&unsandboxed, workflow(&chain(100))?).await?;
        best_plain = best_plain.min(took);
    }
    println!(
        "chain    100 tasks, no sandbox:  {:>8.1} ms total, {:>6.2} ms/step",
        ms(best_plain),
        ms(best_plain) / 100.0
    );

    // Fan-out of 1,000 with parallelism 50.
    let (took, w) = run_to_end(&engine, workflow(&fan_out(1000, 50))?).await?;
    let pods = w
        .status
        .as_ref()
        .map(|s| {
            s.nodes
                .values()
                .filter(|n| n.type_ == Some(argon_crds::workflow::NodeType::Pod))
                .count()
        })
        .unwrap_or(0);
    println!(
        "fan-out  {pods} tasks, parallelism 50: {:>8.1} ms total, {:>6.0} steps/s",
        ms(took),
        pods as f64 / took.as_secs_f64()
    );

    // Submit to first step start.
    let mut latencies = Vec::new();
    for _ in 0..20 {
        let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
        let (_, w) = run_to_end(&engine, workflow(CLOCK)?).await?;
        let name = w.metadata.name.clone().unwrap_or_default();
        let started_ns: u128 = w
            .status
            .as_ref()
            .and_then(|s| s.nodes.get(&name))
            .and_then(|n| n.outputs.as_ref())
            .and_then(|o| o.result.clone())
            .context("no result")?
            .trim()
            .parse()?;
        latencies.push(Duration::from_nanos(
            (started_ns.saturating_sub(before.as_nanos())) as u64,
        ));
    }
    latencies.sort();
    println!(
        "latency  submit -> first step running: median {:>6.2} ms, worst {:>6.2} ms (20 runs)",
        ms(latencies[latencies.len() / 2]),
        ms(*latencies.last().unwrap_or(&Duration::ZERO))
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
