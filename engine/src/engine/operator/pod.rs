//! Leaf steps (container and script templates): prepares the step's
//! process and directory, places its input artifacts, runs it through the
//! executor and turns its outcome into the node's phase and outputs.

use std::sync::Arc;
use std::time::Duration;

use argon_crds::workflow::{Inputs, NodePhase, Outputs, Template};

use super::error::{OperatorError, Result};
use super::expand::int_or_string;
use super::{ARTIFACT_REF, Ctx, Finished, parse_seconds_or_duration, truncate};
use crate::executor::{LogSink, StepProcess};
use crate::expr::{self, Vars};

impl Ctx {
    pub(super) async fn pod(&self, id: &str, tmpl: &Template, inputs: &Inputs, vars: &Vars) -> Finished {
        let engine = &self.engine;
        let store = engine.store();
        if let Some(s) = tmpl.sidecars.first() {
            return Finished::error(format!(
                "sidecars are not run in local mode (sidecar '{}', image {})",
                s.container.name,
                s.container.image.clone().unwrap_or_default()
            ));
        }
        if let Some(s) = tmpl.init_containers.first() {
            return Finished::error(format!(
                "init containers are not run in local mode (init container '{}', image {})",
                s.container.name,
                s.container.image.clone().unwrap_or_default()
            ));
        }
        if tmpl.daemon.unwrap_or(false) {
            return Finished::error("daemon steps are not supported by Argon's local engine yet");
        }
        let (container, script) = match (&tmpl.container, &tmpl.script) {
            (Some(c), _) => (c, None),
            (None, Some(s)) => (&s.container, Some(s.source.as_str())),
            _ => return Finished::error("the template has no container"),
        };
        let sub = |s: &str| expr::substitute(s, vars);
        let prepared: Result<_> = (|| {
            let mut argv = Vec::new();
            for c in container.command.iter().flatten() {
                argv.push(sub(c)?);
            }
            for a in container.args.iter().flatten() {
                argv.push(sub(a)?);
            }
            let image = container.image.as_deref().map(sub).transpose()?;
            let working_dir = container.working_dir.as_deref().map(sub).transpose()?;
            let script = script.map(sub).transpose()?;
            let mut env = Vec::new();
            for e in container.env.iter().flatten() {
                let value = match (&e.value, &e.value_from) {
                    (Some(v), _) => sub(v)?,
                    (None, Some(from)) => {
                        if let Some(sel) = &from.secret_key_ref {
                            match engine.config.secrets.string(sel) {
                                Ok(Some(v)) => v,
                                Ok(None) => continue,
                                Err(source) => {
                                    return Err(OperatorError::EnvSecret {
                                        name: e.name.clone(),
                                        source,
                                    });
                                }
                            }
                        } else if let Some(f) = &from.field_ref {
                            match f.field_path.as_str() {
                                "metadata.name" => id.to_string(),
                                "metadata.namespace" => self.run.namespace.clone(),
                                other => {
                                    return Err(OperatorError::EnvFieldRef {
                                        name: e.name.clone(),
                                        field: other.to_string(),
                                    });
                                }
                            }
                        } else {
                            return Err(OperatorError::EnvSource(e.name.clone()));
                        }
                    }
                    (None, None) => String::new(),
                };
                env.push((e.name.clone(), value));
            }
            Ok((argv, image, working_dir, script, env))
        })();
        let (argv, image, working_dir, script, env) = match prepared {
            Ok(p) => p,
            Err(e) => return Finished::error(e),
        };
        let timeout = match step_timeout(tmpl, vars) {
            Ok(t) => t,
            Err(e) => return Finished::error(e),
        };
        let step_dir = engine.config.state_dir.join("steps").join(&self.run.uid).join(id);
        let _ = std::fs::remove_dir_all(&step_dir);
        let mut paths: Vec<String> = Vec::new();
        paths.extend(
            tmpl.outputs
                .parameters
                .iter()
                .filter_map(|p| p.value_from.as_ref()?.path.clone()),
        );
        paths.extend(tmpl.outputs.artifacts.iter().filter_map(|a| a.path.clone()));
        paths.extend(inputs.artifacts.iter().filter_map(|a| a.path.clone()));
        paths.extend(working_dir.clone());
        if let Err(e) = engine.executor.prepare_paths(&step_dir, &paths) {
            return Finished::error(format!("cannot prepare the step's directory: {e}"));
        }
        if let Err(e) = self.gate().await {
            return Finished::failed(e);
        }
        let mounts = match self.place_inputs(&step_dir, inputs, vars).await {
            Ok(m) => m,
            Err(e) => return Finished::error(e),
        };
        let _permit = match &self.wf_sem {
            Some(sem) => tokio::select! {
                p = sem.clone().acquire_owned() => p.ok(),
                _ = self.cancel.cancelled() => return Finished::failed(self.shutdown_message()),
            },
            None => None,
        };
        if self.cancel.is_cancelled() {
            return Finished::failed(self.shutdown_message());
        }
        let run_as_user = container
            .security_context
            .as_ref()
            .and_then(|s| s.run_as_user)
            .or_else(|| tmpl.security_context.as_ref().and_then(|s| s.run_as_user))
            .or_else(|| self.spec.security_context.as_ref().and_then(|s| s.run_as_user));
        self.run.update_node(store, id, |n| n.phase = Some(NodePhase::Running));
        let logs: LogSink = {
            let engine = engine.clone();
            let uid = self.run.uid.clone();
            let id = id.to_string();
            let run = self.run.clone();
            Arc::new(move |stream: &str, lines: Vec<String>| {
                if run.is_deleted() {
                    return;
                }
                if let Err(e) = engine.store().append_logs(&uid, &id, stream, &lines) {
                    tracing::warn!(error = %e, "cannot store step logs");
                }
                run.bump();
            })
        };
        let step = StepProcess {
            argv,
            env,
            working_dir,
            image: image.clone(),
            step_dir: step_dir.clone(),
            script,
            mounts,
            timeout,
            run_as_user: run_as_user.filter(|_| engine.executor.sandboxed()),
        };
        let outcome = engine.executor.run(step, logs, self.cancel.clone()).await;
        drop(_permit);
        if let Some(e) = outcome.start_error {
            let _ = std::fs::remove_dir_all(&step_dir);
            return Finished::failed(e);
        }
        let mut outputs = Outputs {
            result: Some(outcome.result.clone()),
            exit_code: outcome.exit_code.map(|c| c.to_string()),
            ..Default::default()
        };
        let (mut phase, mut message) = match outcome.exit_code {
            _ if outcome.cancelled => (NodePhase::Failed, Some(self.shutdown_message())),
            _ if outcome.timed_out => (
                NodePhase::Failed,
                Some(format!(
                    "Pod was active on the node longer than the specified deadline ({}s): the process was killed",
                    timeout.map(|t| t.as_secs_f64()).unwrap_or_default()
                )),
            ),
            Some(0) => (NodePhase::Succeeded, None),
            Some(127) if outcome.last_stderr.contains("not found") => (
                NodePhase::Failed,
                Some(format!(
                    "Error (exit code 127): {}",
                    crate::executor::not_found_message(
                        outcome
                            .last_stderr
                            .trim_end_matches(": not found")
                            .trim_end_matches(": command not found"),
                        image.as_deref()
                    )
                )),
            ),
            Some(code) => (
                NodePhase::Failed,
                Some(if outcome.last_stderr.is_empty() {
                    format!("Error (exit code {code})")
                } else {
                    format!("Error (exit code {code}): {}", truncate(&outcome.last_stderr, 300))
                }),
            ),
            None => (NodePhase::Error, Some("the process ended without an exit code".into())),
        };
        if outcome.exit_code.is_some() {
            match self.collect_outputs(id, &step_dir, tmpl, vars, &mut outputs) {
                Ok(()) => {}
                Err(e) if phase == NodePhase::Succeeded => {
                    phase = NodePhase::Error;
                    message = Some(e.to_string());
                }
                Err(_) => {}
            }
        }
        let _ = std::fs::remove_dir_all(&step_dir);
        Finished {
            phase,
            message,
            outputs: Some(outputs),
        }
    }

    /// Places the input artifacts where the step sees them; returns the bind mounts needed.
    async fn place_inputs(
        &self,
        step_dir: &std::path::Path,
        inputs: &Inputs,
        vars: &Vars,
    ) -> Result<Vec<(std::path::PathBuf, String)>> {
        let engine = &self.engine;
        let mut mounts = Vec::new();
        for (i, art) in inputs.artifacts.iter().enumerate() {
            let Some(path) = &art.path else {
                return Err(OperatorError::ArtifactNoPath(art.name.clone()));
            };
            let path = expr::substitute(path, vars)?;
            let (host, bind) =
                engine
                    .executor
                    .input_place(step_dir, &path, i)
                    .map_err(|e| OperatorError::InputArtifact {
                        name: art.name.clone(),
                        source: Box::new(OperatorError::Artifact(e)),
                    })?;
            let res: Result<()> = if let Some(from) = &art.from {
                let from = expr::substitute(from, vars)?;
                match from.strip_prefix(ARTIFACT_REF) {
                    Some(key) => engine.repo.load(key, &host).map_err(OperatorError::Artifact),
                    None => Err(OperatorError::NotAnOutputArtifact(from)),
                }
            } else if let Some(raw) = &art.location.raw {
                let data = expr::substitute(&raw.data, vars)?;
                crate::artifacts::fetch_raw(&data, &host).map_err(OperatorError::Artifact)
            } else if let Some(h) = &art.location.http {
                let mut h = h.clone();
                h.url = expr::substitute(&h.url, vars)?;
                crate::artifacts::fetch_http(&engine.http, &h, &engine.config.secrets, &host)
                    .await
                    .map_err(OperatorError::Artifact)
            } else if let Some(g) = &art.location.git {
                let mut g = g.clone();
                g.repo = expr::substitute(&g.repo, vars)?;
                g.revision = g.revision.map(|r| expr::substitute(&r, vars).unwrap_or(r));
                crate::artifacts::fetch_git(&g, &engine.config.secrets, &host, &step_dir.join("git"))
                    .await
                    .map_err(OperatorError::Artifact)
            } else if art.optional.unwrap_or(false) {
                continue;
            } else if art.location.s3.is_some() && art.location.s3.as_ref().and_then(|s| s.key.as_ref()).is_some() {
                let key = art.location.s3.as_ref().and_then(|s| s.key.clone()).unwrap_or_default();
                engine.repo.load(&key, &host).map_err(OperatorError::Artifact)
            } else {
                Err(OperatorError::UnsupportedLocation)
            };
            res.map_err(|e| OperatorError::InputArtifact {
                name: art.name.clone(),
                source: Box::new(e),
            })?;
            if let Some(mode) = art.mode {
                crate::artifacts::set_mode(&host, mode).map_err(OperatorError::Artifact)?;
            }
            if let Some(target) = bind {
                mounts.push((host, target));
            }
        }
        Ok(mounts)
    }
}

fn step_timeout(tmpl: &Template, vars: &Vars) -> Result<Option<Duration>> {
    let mut t: Option<Duration> = None;
    if let Some(s) = &tmpl.timeout {
        let s = expr::substitute(s, vars)?;
        t = Some(parse_seconds_or_duration(&s).map_err(|e| OperatorError::field("timeout", e))?);
    }
    if let Some(d) = &tmpl.active_deadline_seconds {
        let secs = int_or_string(d, vars).map_err(|e| OperatorError::field("activeDeadlineSeconds", e))?;
        let d = Duration::from_secs(secs.max(0) as u64);
        t = Some(t.map_or(d, |x| x.min(d)));
    }
    Ok(t)
}
