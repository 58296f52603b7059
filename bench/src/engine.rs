//! Scenario `engine`: the workflow engine's overhead per step, for each
//! executor, against the raw cost of its isolation measured in the same run.
//!
//! - sandbox: a DAG of 100 `true` tasks, each depending on the one before (a
//!   fully sequential run: total time / 100 is the per-step cost), against
//!   a bare `bwrap ... true` with the same namespaces; a DAG of 100 parallel
//!   tasks (wall time);
//! - host: the same chain as bare host processes, against spawning `true`;
//! - container (when Podman or Docker answers): a chain of 10 against a bare
//!   `podman run --rm IMAGE true`, and a DAG of 100 parallel tasks;
//! - fan-out: 1,000 sandboxed `true` tasks with `parallelism: 50`;
//! - latency: from `submit` to the first step's process running (the step
//!   prints the wall clock as it starts), median and worst of 20.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use argon_client::SubmitOptions;
use argon_crds::workflow::{Workflow, WorkflowPhase};
use argon_engine::{Engine, EngineConfig, ExecutorChoice, ExecutorKind};

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

fn chain(n: usize, image: &str) -> String {
    let mut s = format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {{generateName: chain-}}\nspec:\n  entrypoint: main\n  templates:\n  - name: t\n    container: {{image: \"{image}\", command: [\"true\"]}}\n  - name: main\n    dag:\n      tasks:\n",
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

fn fan_out(n: usize, parallelism: usize, image: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {{generateName: fan-}}\nspec:\n  entrypoint: main\n  parallelism: {parallelism}\n  templates:\n  - name: t\n    container: {{image: \"{image}\", command: [\"true\"]}}\n  - name: main\n    dag:\n      tasks:\n      - name: t\n        template: t\n        withSequence: {{count: \"{n}\"}}\n"
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

/// `n` runs of `program` from `threads` threads at once: the bare spawn rate
/// when nothing else limits it.
fn spawn_parallel(program: &str, args: &[&str], n: usize, threads: usize) -> anyhow::Result<Duration> {
    let started = Instant::now();
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|t| scope.spawn(move || spawn_many(program, args, n / threads + usize::from(t < n % threads))))
            .collect();
        workers.into_iter().try_for_each(|w| {
            w.join()
                .map_err(|_| anyhow::anyhow!("a spawning thread panicked"))?
                .map(drop)
        })
    })?;
    Ok(started.elapsed())
}

/// Workflows of one sandboxed `true` step each, all submitted at once: the
/// engine's workflows/s against the bare rate of spawning the same bwrap
/// from as many threads as the machine has cores (times 4), in the same run.
async fn throughput(engine: &Engine, n: usize) -> anyhow::Result<()> {
    let threads = std::thread::available_parallelism().map_or(2, |c| c.get()) * 4;
    let bare = spawn_parallel("bwrap", &BARE_BWRAP, n, threads)?;
    let bare_rate = n as f64 / bare.as_secs_f64();
    println!("raw      bwrap `true` x{n} from {threads} threads: {bare_rate:>8.0} processes/s");
    // The executor's own process, outside the engine: the sandbox's whole
    // command line (prlimit, every system bind, hidden files, /proc, /dev).
    let chain_rate = match sandbox_chain()? {
        Some((program, args, _dir)) => {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let took = spawn_parallel(&program, &args, n, threads)?;
            let rate = n as f64 / took.as_secs_f64();
            println!("raw      the sandbox's own `true` x{n} from {threads} threads: {rate:>8.0} processes/s");
            Some(rate)
        }
        None => None,
    };
    let one = "apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nmetadata: {generateName: one-}\nspec:\n  entrypoint: main\n  templates:\n  - name: main\n    container: {image: alpine, command: [\"true\"]}\n";
    let started = Instant::now();
    let mut names = Vec::with_capacity(n);
    for _ in 0..n {
        let s = engine.submit_workflow("", workflow(one)?, SubmitOptions::default())?;
        names.push((s.namespace, s.name));
    }
    let submitted = started.elapsed();
    for (namespace, name) in &names {
        loop {
            match engine.phase_of(namespace, name)? {
                Some(WorkflowPhase::Succeeded) => break,
                Some(p) if p.is_completed() => bail!("{name} ended {p:?}"),
                _ => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }
    let rate = n as f64 / started.elapsed().as_secs_f64();
    println!(
        "sandbox  {n} one-step workflows at once: {rate:>8.0} workflows/s (submitted in {:.1} ms), {:.2} of \
         the bare bwrap spawn rate (goal: 0.7){}",
        ms(submitted),
        rate / bare_rate,
        chain_rate.map_or(String::new(), |c| format!(
            ", {:.2} of the sandbox's own command",
            rate / c
        )),
    );
    Ok(())
}

/// The program and arguments the sandbox executor runs for a `true` step,
/// with the folder it binds as the step's /tmp (kept while they are used).
fn sandbox_chain() -> anyhow::Result<Option<(String, Vec<String>, tempfile::TempDir)>> {
    let Some(sandbox) = argon_engine::executor::Sandbox::detect() else {
        return Ok(None);
    };
    let dir = tempfile::tempdir()?;
    std::fs::create_dir_all(dir.path().join("tmp"))?;
    let step = argon_engine::executor::StepProcess {
        step_dir: dir.path().to_path_buf(),
        ..Default::default()
    };
    let cmd = sandbox
        .command(&step, &[], &["true".to_string()], "/usr/bin:/bin")
        .into_std();
    let program = cmd.get_program().to_string_lossy().into_owned();
    let args = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    Ok(Some((program, args, dir)))
}

/// The sandbox's own isolation, without the engine: what a bare `bwrap true`
/// costs with the same namespaces and read-only system.
const BARE_BWRAP: [&str; 20] = [
    "--unshare-all",
    "--unshare-user",
    "--die-with-parent",
    "--new-session",
    "--uid",
    "65534",
    "--ro-bind",
    "/usr",
    "/usr",
    "--symlink",
    "usr/bin",
    "/bin",
    "--symlink",
    "usr/lib",
    "/lib",
    "--symlink",
    "usr/lib64",
    "/lib64",
    "--",
    "true",
];

/// Best of `rounds` runs of `wf` to its end.
async fn best_of(engine: &Engine, rounds: usize, wf: &str) -> anyhow::Result<Duration> {
    let mut best = Duration::MAX;
    for _ in 0..rounds.max(1) {
        let (took, _) = run_to_end(engine, workflow(wf)?).await?;
        best = best.min(took);
    }
    Ok(best)
}

fn open(dir: &std::path::Path, choice: ExecutorChoice) -> anyhow::Result<std::sync::Arc<Engine>> {
    let mut config = EngineConfig::new(dir);
    config.executor = choice;
    Ok(Engine::open(config)?)
}

pub async fn run(options: &Options) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let engine = open(&dir.path().join("state"), ExecutorChoice::Sandbox)?;
    println!("engine: {}", engine.executor_description());

    // Raw limits, measured in this run.
    let n = 100;
    let plain = spawn_many("true", &[], n)?;
    println!(
        "raw      spawn `true` x{n}: {:>8.1} ms total, {:>6.2} ms/step",
        ms(plain),
        ms(plain) / n as f64
    );
    let bw = spawn_many("bwrap", &BARE_BWRAP, n)?;
    println!(
        "raw      bwrap `true` x{n}: {:>8.1} ms total, {:>6.2} ms/step",
        ms(bw),
        ms(bw) / n as f64
    );

    // Chain of 100 in the sandbox: the engine's overhead over a bare bwrap.
    let best = best_of(&engine, options.rounds, &chain(100, "alpine")).await?;
    let per_step = ms(best) / 100.0;
    println!(
        "sandbox  chain of 100 tasks:   {:>8.1} ms total, {per_step:>6.2} ms/step, engine overhead {:>5.2} ms/step \
         over bare bwrap (goal: < 10 ms)",
        ms(best),
        per_step - ms(bw) / n as f64
    );
    let dag = best_of(&engine, options.rounds, &fan_out(100, 100, "alpine")).await?;
    println!("sandbox  DAG of 100 tasks:     {:>8.1} ms wall time", ms(dag));

    // The same chain as bare host processes: the engine's own share.
    let host = open(&dir.path().join("host"), ExecutorChoice::Host)?;
    let best_plain = best_of(&host, options.rounds, &chain(100, "alpine")).await?;
    println!(
        "host     chain of 100 tasks:   {:>8.1} ms total, {:>6.2} ms/step, engine overhead {:>5.2} ms/step over spawn",
        ms(best_plain),
        ms(best_plain) / 100.0,
        (ms(best_plain) - ms(plain)) / 100.0
    );

    throughput(&engine, 500).await?;
    containers(options, dir.path()).await?;
    // Fan-out of 1,000 with parallelism 50.
    let (took, w) = run_to_end(&engine, workflow(&fan_out(1000, 50, "alpine"))?).await?;
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

/// The container executor against a bare `podman run --rm` (or `docker
/// run`) of the same image, when a runtime answers; the image is
/// `ARGON_BENCH_IMAGE` (default: the busybox image `scripts/test-images` builds).
async fn containers(options: &Options, dir: &std::path::Path) -> anyhow::Result<()> {
    let engine = match open(&dir.join("containers"), ExecutorChoice::Auto) {
        Ok(e) if e.executor_kind().is_container() => e,
        _ => {
            println!("container: no runtime answered; skipped (start podman system service to measure it)");
            return Ok(());
        }
    };
    let image = std::env::var("ARGON_BENCH_IMAGE").unwrap_or_else(|_| "localhost/argon-test/busybox:1".into());
    let cli = if engine.executor_kind() == ExecutorKind::Docker {
        "docker"
    } else {
        "podman"
    };
    println!("engine: {}", engine.executor_description());
    let n = 10;
    spawn_many(cli, &["run", "--rm", &image, "true"], 1)?;
    let bare = spawn_many(cli, &["run", "--rm", &image, "true"], n)?;
    let per_bare = ms(bare) / n as f64;
    println!(
        "raw      {cli} run --rm x{n}: {:>8.1} ms total, {per_bare:>6.1} ms/step",
        ms(bare)
    );
    let best = best_of(&engine, options.rounds, &chain(n, &image)).await?;
    let per_step = ms(best) / n as f64;
    println!(
        "container chain of {n} tasks:   {:>8.1} ms total, {per_step:>6.1} ms/step, {:.2}x a bare {cli} run (goal: <= 1.2x)",
        ms(best),
        per_step / per_bare
    );
    let (dag, _) = run_to_end(&engine, workflow(&fan_out(100, 100, &image))?).await?;
    println!("container DAG of 100 tasks:    {:>8.1} ms wall time", ms(dag));
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
