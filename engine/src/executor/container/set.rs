//! `containerSet` templates: their containers run in waves, each once
//! those it depends on have succeeded, on the workflow's network and
//! sharing the template's volumes.

use tokio_util::sync::CancellationToken;

use super::{ContainerBackend, runtime_message};
use crate::executor::{ContainerSpec, LogSink, StepOutcome, StepProcess};

impl ContainerBackend {
    /// Runs a `containerSet`: each container once those it depends on have
    /// succeeded, the ready ones at the same time, all on the workflow's
    /// network and sharing the template's volumes. The main container's
    /// stdout is the result and its paths are the outputs; the first
    /// container that fails ends the set.
    pub(super) async fn run_set(&self, step: &StepProcess, logs: &LogSink, cancel: &CancellationToken) -> StepOutcome {
        let network = if step.host_network {
            "host".to_string()
        } else {
            match self.network(&step.owner).await {
                Ok(n) => n,
                Err(e) => return StepOutcome::not_started(e),
            }
        };
        for (spec, _) in &step.container_set {
            if let Err(e) = self.ensure_image(spec, logs).await {
                return StepOutcome::not_started(e);
            }
        }
        let mut done: Vec<String> = Vec::new();
        let mut main_outcome = None;
        while done.len() < step.container_set.len() {
            let ready: Vec<&(ContainerSpec, Vec<String>)> = step
                .container_set
                .iter()
                .filter(|(c, deps)| !done.contains(&c.name) && deps.iter().all(|d| done.contains(d)))
                .collect();
            if ready.is_empty() {
                return StepOutcome::not_started(
                    "the containerSet's dependencies name a container it lacks, or form a cycle",
                );
            }
            let runs = ready.iter().map(|(spec, _)| {
                let name = Self::container_name(&step.owner, &format!("set-{}", spec.name));
                let is_main = spec.name == step.main.name;
                // Every container's lines are the step's log; only main's stdout is its result.
                let sink = logs.clone();
                let network = network.as_str();
                async move {
                    self.remove(&name).await;
                    self.create(&name, &format!("set-{}", spec.name), spec, step, network, None)
                        .await
                        .map_err(StepOutcome::not_started)?;
                    self.upload_inputs(&name, step)
                        .await
                        .map_err(StepOutcome::not_started)?;
                    self.docker.start_container(&name, None).await.map_err(|e| {
                        StepOutcome::not_started(format!(
                            "cannot start container '{}': {}",
                            spec.name,
                            runtime_message(&e)
                        ))
                    })?;
                    let mut out = self.follow(&name, step.timeout, sink, cancel).await;
                    if is_main
                        && out.exit_code.is_some()
                        && let Err(e) = self.download_outputs(&name, step).await
                    {
                        out.output_error = Some(e);
                    }
                    Ok::<_, StepOutcome>((spec.name.clone(), out))
                }
            });
            for r in futures::future::join_all(runs).await {
                let (name, out) = match r {
                    Ok(x) => x,
                    Err(out) => return out,
                };
                if out.exit_code != Some(0) {
                    let mut failed = out;
                    if failed.reason.is_none() && failed.exit_code.is_some() {
                        failed.reason = Some(format!(
                            "container '{name}' of the set failed{}",
                            if failed.last_stderr.is_empty() {
                                String::new()
                            } else {
                                format!(": {}", failed.last_stderr)
                            }
                        ));
                    }
                    return failed;
                }
                if name == step.main.name {
                    main_outcome = Some(out);
                }
                done.push(name);
            }
        }
        main_outcome.unwrap_or_default()
    }
}
