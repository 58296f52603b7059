//! Leaf steps (container and script templates): prepares the step's
//! process and directory, places its input artifacts, runs it through the
//! executor and turns its outcome into the node's phase and outputs.

use std::sync::Arc;
use std::time::Duration;

use argon_crds::workflow::{Inputs, NodePhase, Outputs, Template};

use super::error::{OperatorError, Result};
use super::expand::{int_or_string, substitute_value};
use super::{ARTIFACT_REF, Ctx, Finished, parse_seconds_or_duration, remove_dir, stopping, truncate};
use k8s_openapi::api::core::v1::{Container, PodSpec, Volume};

use crate::executor::kubernetes::PodParts;
use crate::executor::spec::container_spec;
use crate::executor::{ContainerSpec, LogSink, StepOutcome, StepOwner, StepProcess};
use crate::expr::{self, Vars};

impl Ctx {
    pub(super) async fn pod(&self, id: &str, tmpl: &Template, inputs: &Inputs, vars: &Vars) -> Finished {
        let engine = &self.engine;
        let store = engine.store();
        let daemon = tmpl.daemon.unwrap_or(false);
        if daemon && !engine.executor.runs_daemons() {
            return Finished::failed(crate::executor::DAEMON_NEEDS_CONTAINERS);
        }
        let set_main = tmpl.container_set.as_ref().and_then(|set| {
            let main = set.containers.iter().find(|c| c.container.name == "main");
            main.or(set.containers.last()).map(|c| &c.container)
        });
        let (container, script) = match (&tmpl.container, &tmpl.script, set_main) {
            (Some(c), _, _) => (c, None),
            (None, Some(s), _) => (&s.container, Some(s.source.as_str())),
            (None, None, Some(c)) => (c, None),
            _ => return Finished::error("the template has no container"),
        };
        let owner = StepOwner {
            workflow_uid: self.run.uid.clone(),
            workflow_name: self.run.name.clone(),
            namespace: self.run.namespace.clone(),
            node_id: id.to_string(),
        };
        let pod_security = tmpl.security_context.as_ref().or(self.spec.security_context.as_ref());
        let runs_pods = engine.executor.runs_pods();
        let substituted = |c: &Container| -> Result<Container> {
            let value = serde_json::to_value(c).map_err(OperatorError::Serialize)?;
            serde_json::from_value(substitute_value(&value, vars)?).map_err(OperatorError::Serialize)
        };
        let spec_of = |name: &str, c: &Container| -> Result<ContainerSpec> {
            let mut c = substituted(c)?;
            if runs_pods {
                // The cluster resolves the environment (secretKeyRef, fieldRef...).
                c.env = None;
                c.env_from = None;
            }
            container_spec(name, &c, pod_security, &engine.config.secrets, &owner).map_err(OperatorError::Step)
        };
        let prepared: Result<_> = (|| {
            let main = spec_of("main", container)?;
            let init = tmpl
                .init_containers
                .iter()
                .map(|c| spec_of(&c.container.name, &c.container))
                .collect::<Result<Vec<_>, _>>()?;
            let sidecars = tmpl
                .sidecars
                .iter()
                .map(|c| spec_of(&c.container.name, &c.container))
                .collect::<Result<Vec<_>, _>>()?;
            let volumes = serde_json::to_value(&tmpl.volumes).map_err(OperatorError::Serialize)?;
            let volumes: Vec<Volume> =
                serde_json::from_value(substitute_value(&volumes, vars)?).map_err(OperatorError::Serialize)?;
            let volumes = self.spec.volumes.iter().cloned().chain(volumes).collect::<Vec<_>>();
            let script = script.map(|s| expr::substitute(s, vars)).transpose()?;
            let mut set = Vec::new();
            if let Some(cs) = &tmpl.container_set {
                for member in &cs.containers {
                    let mut c = member.container.clone();
                    c.volume_mounts
                        .get_or_insert_with(Vec::new)
                        .extend(cs.volume_mounts.iter().cloned());
                    set.push((spec_of(&c.name, &c)?, member.dependencies.clone()));
                }
            }
            let main = match set.iter().find(|(c, _)| c.name == "main").or(set.last()) {
                Some((c, _)) => c.clone(),
                None => main,
            };
            let pod = match runs_pods {
                true => Some(Box::new(self.pod_parts(tmpl, substituted(container)?, &substituted)?)),
                false => None,
            };
            Ok((main, init, sidecars, volumes, script, set, pod))
        })();
        let (main, init_containers, sidecars, volumes, script, container_set, pod) = match prepared {
            Ok(p) => p,
            Err(e) => return Finished::error(e),
        };
        let working_dir = main.working_dir.clone();
        let timeout = match step_timeout(tmpl, vars) {
            Ok(t) => t,
            Err(e) => return Finished::error(e),
        };
        let step_dir = engine.config.state_dir.join("steps").join(&self.run.uid).join(id);
        let resumed = self.run.node(id).is_some_and(|n| n.phase == Some(NodePhase::Running));
        // A step left running on an executor whose steps outlive the engine
        // may have sent its outputs here already (the kubernetes executor).
        if !(resumed && engine.executor.steps_outlive_engine()) {
            remove_dir(&step_dir).await;
        }
        // The paths the step hands back, then those it reads or works in.
        let outputs = tmpl
            .outputs
            .parameters
            .iter()
            .filter_map(|p| p.value_from.as_ref()?.path.as_ref());
        let output_paths = match outputs
            .chain(tmpl.outputs.artifacts.iter().filter_map(|a| a.path.as_ref()))
            .map(|p| expr::substitute(p, vars))
            .collect::<std::result::Result<Vec<String>, _>>()
        {
            Ok(p) => p,
            Err(e) => return Finished::error(e),
        };
        let mut paths = output_paths.clone();
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
        // A stopping engine starts no step: this one stays Pending for the next.
        let Some(running) = engine.step_starting() else {
            return stopping().await;
        };
        self.run.update_node(store, id, |n| n.phase = Some(NodePhase::Running));
        let step = StepProcess {
            main,
            init_containers,
            sidecars,
            container_set,
            volumes,
            step_dir: step_dir.clone(),
            script,
            mounts,
            outputs: output_paths,
            timeout,
            host_network: self.spec.host_network.unwrap_or(false),
            owner,
            network_alias: daemon.then(|| self.network_alias(id)),
            resumed,
            pod,
        };
        if let Err(e) = store.clear_node_logs(&self.run.uid, id) {
            tracing::warn!(error = %e, "cannot clear the logs of a step that starts again");
        }
        if daemon {
            // A daemon outlives this call, and an engine that stops leaves it
            // running to re-attach to: it does not hold up a drain.
            drop(running);
            return match self.daemon(id, step).await {
                Ok(f) => f,
                Err(outcome) => {
                    remove_dir(&step_dir).await;
                    let (phase, message) = match &outcome.start_error {
                        Some(e) => (NodePhase::Failed, Some(e.clone())),
                        None => self.outcome_phase(&outcome, timeout),
                    };
                    let f = Finished {
                        phase,
                        message,
                        outputs: None,
                    };
                    self.finish(id, f.clone());
                    f
                }
            };
        }
        let logs = self.log_sink(id);
        let outcome = engine.executor.run(step, logs, self.cancel.clone()).await;
        drop(_permit);
        // The outcome is stored before the step stops counting as running, so an
        // engine that drains finds it recorded.
        let recorded = |f: Finished| {
            self.finish(id, f.clone());
            drop(running);
            f
        };
        if let Some(e) = outcome.start_error {
            remove_dir(&step_dir).await;
            return recorded(Finished::failed(e));
        }
        let mut outputs = Outputs {
            result: Some(outcome.result.clone()),
            exit_code: outcome.exit_code.map(|c| c.to_string()),
            ..Default::default()
        };
        let (mut phase, mut message) = self.outcome_phase(&outcome, timeout);
        if let Some(e) = outcome.output_error.clone()
            && phase == NodePhase::Succeeded
        {
            phase = NodePhase::Error;
            message = Some(e);
        }
        if outcome.exit_code.is_some() && phase != NodePhase::Error {
            match self.collect_outputs(id, &step_dir, tmpl, vars, &mut outputs).await {
                Ok(()) => {}
                Err(e) if phase == NodePhase::Succeeded => {
                    phase = NodePhase::Error;
                    message = Some(e.to_string());
                }
                Err(_) => {}
            }
        }
        if self.archives_logs(tmpl) {
            match self.archive_logs(id, vars).await {
                Ok(logs) => outputs.artifacts.push(logs),
                Err(e) if phase == NodePhase::Succeeded => {
                    phase = NodePhase::Error;
                    message = Some(e.to_string());
                }
                Err(e) => tracing::warn!(error = %e, "cannot archive the logs of a failed step"),
            }
        }
        remove_dir(&step_dir).await;
        recorded(Finished {
            phase,
            message,
            outputs: Some(outputs),
        })
    }

    /// The template's pod as the kubernetes executor makes it: its
    /// containers as written (variables substituted), and the pod settings
    /// of the template over the workflow's.
    fn pod_parts(
        &self,
        tmpl: &Template,
        main: Container,
        substituted: &dyn Fn(&Container) -> Result<Container>,
    ) -> Result<PodParts> {
        let wf = &self.spec;
        let all = |list: &[argon_crds::workflow::UserContainer]| -> Result<Vec<Container>> {
            list.iter().map(|c| substituted(&c.container)).collect()
        };
        let node_selector = match tmpl.node_selector.is_empty() {
            true => &wf.node_selector,
            false => &tmpl.node_selector,
        };
        let dns_policy = wf
            .dns_policy
            .map(|p| serde_json::to_value(p).map_err(OperatorError::Serialize))
            .transpose()?
            .and_then(|v| v.as_str().map(str::to_string));
        let spec = PodSpec {
            service_account_name: tmpl
                .service_account_name
                .clone()
                .or_else(|| wf.service_account_name.clone()),
            automount_service_account_token: tmpl
                .automount_service_account_token
                .or(wf.automount_service_account_token),
            node_selector: (!node_selector.is_empty()).then(|| node_selector.clone()),
            affinity: tmpl.affinity.clone().or_else(|| wf.affinity.clone()),
            tolerations: Some(
                wf.tolerations
                    .iter()
                    .chain(&tmpl.tolerations)
                    .cloned()
                    .collect::<Vec<_>>(),
            )
            .filter(|t| !t.is_empty()),
            image_pull_secrets: Some(wf.image_pull_secrets.clone()).filter(|s| !s.is_empty()),
            dns_policy,
            dns_config: wf.dns_config.clone(),
            scheduler_name: tmpl.scheduler_name.clone().or_else(|| wf.scheduler_name.clone()),
            priority_class_name: tmpl
                .priority_class_name
                .clone()
                .or_else(|| wf.pod_priority_class_name.clone()),
            priority: tmpl.priority.or(wf.pod_priority),
            host_aliases: Some(
                wf.host_aliases
                    .iter()
                    .chain(&tmpl.host_aliases)
                    .cloned()
                    .collect::<Vec<_>>(),
            )
            .filter(|h| !h.is_empty()),
            security_context: tmpl.security_context.clone().or_else(|| wf.security_context.clone()),
            ..Default::default()
        };
        let mut labels = std::collections::BTreeMap::new();
        let mut annotations = std::collections::BTreeMap::new();
        for meta in wf.pod_metadata.iter().chain([&tmpl.metadata]) {
            labels.extend(meta.labels.clone());
            annotations.extend(meta.annotations.clone());
        }
        Ok(PodParts {
            main,
            init_containers: all(&tmpl.init_containers)?,
            sidecars: all(&tmpl.sidecars)?,
            spec,
            labels,
            annotations,
            pod_gc: wf.pod_gc.clone(),
        })
    }

    /// The node's phase and message for how its main container ended.
    fn outcome_phase(&self, outcome: &StepOutcome, timeout: Option<Duration>) -> (NodePhase, Option<String>) {
        match outcome.exit_code {
            _ if outcome.cancelled => (NodePhase::Failed, Some(self.shutdown_message())),
            _ if outcome.timed_out => (
                NodePhase::Failed,
                Some(format!(
                    "Pod was active on the node longer than the specified deadline ({}s): the process was killed",
                    timeout.map(|t| t.as_secs_f64()).unwrap_or_default()
                )),
            ),
            Some(0) => (NodePhase::Succeeded, None),
            Some(code) if outcome.reason.as_deref() == Some("OOMKilled") => {
                (NodePhase::Failed, Some(format!("OOMKilled (exit code {code})")))
            }
            Some(code) if outcome.reason.is_some() => (
                NodePhase::Failed,
                Some(format!(
                    "Error (exit code {code}): {}",
                    outcome.reason.clone().unwrap_or_default()
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
        }
    }

    /// Stores a step's output lines as they come.
    pub(super) fn log_sink(&self, id: &str) -> LogSink {
        let engine = self.engine.clone();
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
    }

    /// The name a daemon step is reached by on the workflow's network: its
    /// step or task name as a DNS label.
    fn network_alias(&self, id: &str) -> String {
        let display = self.run.node(id).and_then(|n| n.display_name).unwrap_or_default();
        let name = display.split('(').next().unwrap_or("");
        let mut label: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() {
                    c.to_ascii_lowercase()
                } else {
                    '-'
                }
            })
            .collect();
        label.truncate(63);
        let label = label.trim_matches('-').to_string();
        if label.is_empty() { "daemon".to_string() } else { label }
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
            // With a subPath, the whole artifact is fetched beside the step's
            // files and only that part is placed.
            let sub_path = match &art.sub_path {
                Some(s) => Some(expr::substitute(s, vars)?).filter(|s| !s.trim_matches('/').is_empty()),
                None => None,
            };
            let fetch_to = match &sub_path {
                Some(_) => step_dir.join(format!("input-{i}-whole")),
                None => host.clone(),
            };
            let res: Result<bool> = if let Some(from) = &art.from {
                let from = expr::substitute(from, vars)?;
                match from.strip_prefix(ARTIFACT_REF) {
                    Some(r) => {
                        self.load_artifact(
                            &crate::artifacts::dereference(r),
                            &fetch_to,
                            art.optional.unwrap_or(false),
                        )
                        .await
                    }
                    None => Err(OperatorError::NotAnOutputArtifact(from)),
                }
            } else if let Some(raw) = &art.location.raw {
                let data = expr::substitute(&raw.data, vars)?;
                crate::artifacts::fetch_raw(&data, &fetch_to)
                    .map(|()| true)
                    .map_err(OperatorError::Artifact)
            } else if let Some(h) = &art.location.http {
                let mut h = h.clone();
                h.url = expr::substitute(&h.url, vars)?;
                crate::artifacts::fetch_http(&engine.http, &h, &engine.config.secrets, &fetch_to)
                    .await
                    .map(|()| true)
                    .map_err(OperatorError::Artifact)
            } else if let Some(g) = &art.location.git {
                let mut g = g.clone();
                g.repo = expr::substitute(&g.repo, vars)?;
                g.revision = g.revision.map(|r| expr::substitute(&r, vars).unwrap_or(r));
                crate::artifacts::fetch_git(&g, &engine.config.secrets, &fetch_to, &step_dir.join("git"))
                    .await
                    .map(|()| true)
                    .map_err(OperatorError::Artifact)
            } else if let Some(s3) = &art.location.s3 {
                let mut s3 = s3.clone();
                s3.key = s3.key.map(|k| expr::substitute(&k, vars)).transpose()?;
                self.load_artifact(&s3, &fetch_to, art.optional.unwrap_or(false)).await
            } else if let Some(msg) = crate::artifacts::unsupported(&art.location) {
                Err(OperatorError::Artifact(msg))
            } else if art.optional.unwrap_or(false) {
                continue;
            } else {
                Err(OperatorError::UnsupportedLocation)
            };
            let res = res.and_then(|placed| match &sub_path {
                Some(sub) if placed => crate::artifacts::take_sub_path(&fetch_to, sub, &host)
                    .map(|()| true)
                    .map_err(OperatorError::Artifact),
                _ => Ok(placed),
            });
            let placed = res.map_err(|e| OperatorError::InputArtifact {
                name: art.name.clone(),
                source: Box::new(e),
            })?;
            if !placed {
                continue;
            }
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
