//! The operator's side of artifacts: the repository a workflow stores in
//! (chosen when it starts, kept in `status.artifactRepositoryRef`), where
//! each output goes (`s3.key` or the repository's `keyFormat`), input
//! artifacts fetched from a repository, step logs archived (`archiveLogs`),
//! and the artifact GC at the workflow's end.

use std::path::Path;

use argon_crds::workflow::{Artifact, ArtifactGcStrategy, S3Artifact, Template, Workflow};

use super::error::{OperatorError, Result};
use super::{Ctx, Run};
use crate::artifacts::{Chosen, Missing, Packing, Place};
use crate::engine::Engine;
use crate::expr::{self, Vars};

/// The name Argo gives a step's archived logs.
pub(crate) const LOGS_ARTIFACT: &str = "main-logs";

/// The repository of the workflow `run` runs: the one recorded when it
/// started (a resumed workflow keeps it), else the one chosen now, recorded.
pub(super) fn choose_repository(engine: &Engine, run: &Run) -> std::result::Result<Chosen, String> {
    let (recorded, namespace, r) = run.with(|wf| {
        (
            wf.status.as_ref().and_then(|s| s.artifact_repository_ref.clone()),
            wf.metadata.namespace.clone().unwrap_or_default(),
            super::effective_spec(wf).artifact_repository_ref,
        )
    });
    if let Some(chosen) = recorded.as_ref().and_then(Chosen::from_status) {
        return Ok(chosen);
    }
    let chosen = engine.artifacts.choose(&namespace, r.as_ref())?;
    let status = chosen.status.clone();
    run.update_workflow(engine.store(), |wf| {
        wf.status.get_or_insert_with(Default::default).artifact_repository_ref = status;
    });
    Ok(chosen)
}

fn artifact_error(name: &str, e: impl Into<String>) -> OperatorError {
    OperatorError::OutputArtifact {
        name: name.to_string(),
        source: Box::new(OperatorError::Artifact(e.into())),
    }
}

impl Ctx {
    /// Where output artifact `a` of node `id` (saved `packing`) is stored:
    /// its own `s3.key`, else the repository's key format and its file
    /// name, else the local repository's `UID/NODE/NAME`.
    fn output_place(&self, id: &str, a: &Artifact, vars: &Vars, packing: Packing) -> Result<Place> {
        let file = format!("{}{}", a.name, packing.suffix());
        let key_format = self.repo.s3().map(|r| r.key_format());
        let templated = |k: &str| -> Result<String> {
            let k = expr::substitute(k, vars)?;
            if k.contains("{{") {
                return Err(artifact_error(
                    &a.name,
                    format!("the key '{k}' names a variable that has no value here"),
                ));
            }
            Ok(k.trim_matches('/').to_string())
        };
        if let Some(s3) = &a.location.s3 {
            let mut s3 = s3.clone();
            s3.key = Some(match &s3.key {
                Some(k) => templated(k)?,
                None => format!(
                    "{}/{file}",
                    templated(
                        key_format
                            .as_deref()
                            .unwrap_or(crate::artifacts::repository::DEFAULT_KEY_FORMAT)
                    )?
                ),
            });
            return Ok(self.repo.place_of(&s3));
        }
        match (self.repo.s3(), key_format) {
            (Some(repo), Some(format)) => Ok(Place::S3(Box::new(
                repo.location(Some(format!("{}/{file}", templated(&format)?))),
            ))),
            _ => Ok(Place::Local(format!("{}/{id}/{file}", self.run.uid))),
        }
    }

    /// Saves output artifact `a` of a finished step from its file; `None`
    /// for an optional artifact the step did not write.
    pub(super) async fn save_output(
        &self,
        id: &str,
        step_dir: &Path,
        a: &Artifact,
        vars: &Vars,
    ) -> Result<Option<Artifact>> {
        let engine = &self.engine;
        let Some(path) = &a.path else { return Ok(None) };
        let path = expr::substitute(path, vars)?;
        let host = engine.executor.host_path(step_dir, &path);
        if !host.exists() {
            if a.optional.unwrap_or(false) {
                return Ok(None);
            }
            return Err(OperatorError::OutputArtifactMissing {
                name: a.name.clone(),
                path,
            });
        }
        if let Some(msg) = crate::artifacts::unsupported(&a.location) {
            return Err(artifact_error(&a.name, msg));
        }
        let packing = Packing::of(a.archive.as_ref());
        let place = self.output_place(id, a, vars, packing)?;
        let bytes = engine
            .artifacts
            .save(&place, &host, packing, &engine.config.state_dir.join("scratch"))
            .await
            .map_err(|e| artifact_error(&a.name, e))?;
        tracing::debug!(artifact = %a.name, location = %place.url(), bytes, "output artifact stored");
        let mut out = Artifact {
            name: a.name.clone(),
            path: Some(path),
            global_name: a.global_name.clone(),
            archive: a.archive.clone(),
            artifact_gc: a.artifact_gc.clone(),
            ..Default::default()
        };
        out.location.s3 = Some(place.recorded());
        Ok(Some(out))
    }

    /// Places the artifact at `location` (a recorded output, or an input's
    /// own `s3`) at `host`; false when it does not exist and `optional`.
    pub(super) async fn load_artifact(&self, location: &S3Artifact, host: &Path, optional: bool) -> Result<bool> {
        let place = self.repo.place_of(location);
        if place.key().is_empty() {
            return Err(OperatorError::Artifact("the s3 location has no key".into()));
        }
        let scratch = self.engine.config.state_dir.join("scratch");
        match self.engine.artifacts.load(&place, host, &scratch).await {
            Ok(()) => Ok(true),
            Err(Missing::NotFound(_)) if optional => Ok(false),
            Err(e) => Err(OperatorError::Artifact(e.to_string())),
        }
    }

    /// Whether a step of `tmpl` has its logs archived: the template's
    /// `archiveLocation.archiveLogs`, else the workflow's `archiveLogs`,
    /// else the repository's.
    pub(super) fn archives_logs(&self, tmpl: &Template) -> bool {
        tmpl.archive_location
            .as_ref()
            .and_then(|l| l.archive_logs)
            .or(self.spec.archive_logs)
            .unwrap_or_else(|| self.repo.archive_logs())
    }

    /// Stores the logs of step `id` next to its outputs, as `main-logs`
    /// (`main.log`, stored as it is).
    pub(super) async fn archive_logs(&self, id: &str, vars: &Vars) -> Result<Artifact> {
        let engine = &self.engine;
        let lines = engine
            .store()
            .logs(&self.run.uid, 0)
            .map_err(|e| artifact_error(LOGS_ARTIFACT, e.to_string()))?;
        let scratch = engine.config.state_dir.join("scratch");
        std::fs::create_dir_all(&scratch).map_err(|e| artifact_error(LOGS_ARTIFACT, e.to_string()))?;
        let file = crate::artifacts::store::scratch_file(&scratch, "main.log");
        let mut text = String::new();
        for l in lines.iter().filter(|l| l.node_id == id) {
            text.push_str(&l.line);
            text.push('\n');
        }
        std::fs::write(&file, text).map_err(|e| artifact_error(LOGS_ARTIFACT, e.to_string()))?;
        let decl = Artifact {
            name: "main".into(),
            ..Default::default()
        };
        let mut place = self.output_place(id, &decl, vars, Packing::None)?;
        // Argo's name for the file: main.log.
        match &mut place {
            Place::Local(k) => k.push_str(".log"),
            Place::S3(s) => s.key = s.key.take().map(|k| format!("{k}.log")),
        }
        let res = engine.artifacts.save(&place, &file, Packing::None, &scratch).await;
        let _ = std::fs::remove_file(&file);
        res.map_err(|e| artifact_error(LOGS_ARTIFACT, e))?;
        let mut out = Artifact {
            name: LOGS_ARTIFACT.into(),
            ..Default::default()
        };
        out.location.s3 = Some(place.recorded());
        Ok(out)
    }
}

/// The GC strategy of a recorded output artifact: its own, else the workflow's.
fn gc_strategy(wf: &Workflow, a: &Artifact) -> ArtifactGcStrategy {
    let own = a.artifact_gc.as_ref().and_then(|g| g.strategy);
    let workflow = super::effective_spec(wf)
        .artifact_gc
        .as_ref()
        .and_then(|g| g.artifact_gc.strategy);
    match own {
        Some(ArtifactGcStrategy::Undefined) | None => workflow.unwrap_or(ArtifactGcStrategy::Never),
        Some(s) => s,
    }
}

/// The output artifacts of `wf` to delete for `strategy`, with their places.
pub(crate) fn garbage(wf: &Workflow, strategy: ArtifactGcStrategy) -> Vec<(String, String, Place)> {
    let chosen = wf
        .status
        .as_ref()
        .and_then(|s| s.artifact_repository_ref.as_ref())
        .and_then(Chosen::from_status)
        .unwrap_or_default();
    crate::artifacts::outputs_of(wf)
        .into_iter()
        .filter(|(_, a)| a.deleted != Some(true) && gc_strategy(wf, a) == strategy)
        .filter_map(|(node, a)| {
            let place = chosen.place_of(a.location.s3.as_ref()?);
            Some((node, a.name, place))
        })
        .collect()
}

/// Deletes the artifacts [`garbage`] gave; returns the (node, artifact)
/// pairs deleted. Failures are logged, not fatal.
pub(crate) async fn collect_garbage(engine: &Engine, garbage: Vec<(String, String, Place)>) -> Vec<(String, String)> {
    let mut deleted = Vec::new();
    for (node, name, place) in garbage {
        match engine.artifacts.delete(&place).await {
            Ok(_) => deleted.push((node, name)),
            Err(e) => tracing::warn!(artifact = %name, location = %place.url(), error = %e, "artifact GC failed"),
        }
    }
    deleted
}

impl Run {
    /// Marks the deleted artifacts and records the GC strategy as processed.
    pub(super) fn artifacts_collected(
        &self,
        store: &crate::store::Store,
        strategy: ArtifactGcStrategy,
        deleted: &[(String, String)],
    ) {
        for (node, name) in deleted {
            // Nodes are saved one by one, apart from the workflow's row.
            self.update_node(store, node, |n| {
                if let Some(a) = n
                    .outputs
                    .as_mut()
                    .and_then(|o| o.artifacts.iter_mut().find(|a| &a.name == name))
                {
                    a.deleted = Some(true);
                }
            });
        }
        self.update_workflow(store, |wf| {
            wf.status.get_or_insert_with(Default::default).artifact_gc_status = Some(serde_json::json!({
                "strategiesProcessed": {format!("{strategy:?}"): true},
                "notSpecified": false,
            }));
        });
    }
}
