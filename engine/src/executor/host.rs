//! The host executor (`--executor host`): a step is a plain host process
//! in its own process group, with no isolation at all. Its paths are the
//! host's paths; its working directory defaults to the step's `tmp`
//! directory, which is also its `TMPDIR`. Only used when asked for.

use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;

use super::{Backend, ExecutorKind, LogSink, StepOutcome, StepProcess, not_found_message, process};

/// Runs steps as bare host processes.
pub struct Host {
    extra_path: Vec<PathBuf>,
}

impl Host {
    /// The host executor; `extra_path` goes in front of every step's `PATH`.
    pub fn new(extra_path: Vec<PathBuf>) -> Host {
        Host { extra_path }
    }
}

#[async_trait::async_trait]
impl Backend for Host {
    fn kind(&self) -> ExecutorKind {
        ExecutorKind::Host
    }

    fn describe(&self) -> String {
        "steps run as host processes WITHOUT isolation (--executor host): they see and may change everything the \
         engine's user can"
            .to_string()
    }

    fn host_path(&self, _step_dir: &Path, path: &str) -> PathBuf {
        PathBuf::from(path)
    }

    fn input_place(&self, _step_dir: &Path, path: &str, _index: usize) -> Result<(PathBuf, Option<String>), String> {
        Ok((PathBuf::from(path), None))
    }

    fn prepare_paths(&self, _step_dir: &Path, _paths: &[String]) -> std::io::Result<()> {
        Ok(())
    }

    async fn run(&self, step: StepProcess, logs: LogSink, cancel: CancellationToken) -> StepOutcome {
        if let Some(e) = needs_containers(&step) {
            return StepOutcome::not_started(e);
        }
        if let Some(m) = step.main.volume_mounts.first() {
            return StepOutcome::not_started(format!(
                "volume mount '{}': the host executor does not mount volumes; use --executor sandbox, podman or docker",
                m.name
            ));
        }
        let mut argv = step.main.argv();
        if argv.is_empty() {
            return StepOutcome::not_started(no_command(step.main.image.as_deref()));
        }
        let extra: Vec<String> = self.extra_path.iter().map(|p| p.display().to_string()).collect();
        let path = process::search_path(&extra, &step.main.env);
        if !process::found(&argv[0], &path) {
            return StepOutcome::not_started(not_found_message(&argv[0], step.main.image.as_deref()));
        }
        let tmp = step.step_dir.join("tmp");
        if let Err(e) = std::fs::create_dir_all(&tmp) {
            return StepOutcome::not_started(format!("cannot create the step directory: {e}"));
        }
        if let Some(source) = &step.script {
            let file = step.step_dir.join("script");
            if let Err(e) = std::fs::write(&file, source) {
                return StepOutcome::not_started(format!("cannot write the script: {e}"));
            }
            argv.insert(1, file.display().to_string());
        }
        let wd = match &step.main.working_dir {
            Some(wd) if !Path::new(wd).is_dir() => {
                return StepOutcome::not_started(format!(
                    "the working directory {wd} does not exist; the host executor runs a step in the host's \
                     directories"
                ));
            }
            Some(wd) => PathBuf::from(wd),
            None => tmp.clone(),
        };
        let mut c = tokio::process::Command::new(&argv[0]);
        c.args(&argv[1..])
            .current_dir(wd)
            .env("TMPDIR", &tmp)
            .env("PATH", &path);
        for (k, v) in &step.main.env {
            if k != "PATH" {
                c.env(k, v);
            }
        }
        process::run(c, &argv[0], step.main.image.as_deref(), step.timeout, logs, cancel).await
    }
}

/// Why a process backend cannot run the step's pod: sidecars and init
/// containers are containers of their own.
pub(crate) fn needs_containers(step: &StepProcess) -> Option<String> {
    if !step.container_set.is_empty() {
        return Some("containerSet templates need a container executor (--executor podman or docker)".to_string());
    }
    let (what, c) = match (step.sidecars.first(), step.init_containers.first()) {
        (Some(c), _) => ("sidecar", c),
        (None, Some(c)) => ("init container", c),
        (None, None) => return None,
    };
    Some(format!(
        "{what} '{}' (image {}) needs a container executor (--executor podman or docker)",
        c.name,
        c.image.clone().unwrap_or_default()
    ))
}

/// The message of a container without a command, for process backends.
pub(crate) fn no_command(image: Option<&str>) -> String {
    match image {
        Some(image) => format!(
            "the container has no command: the entrypoint of image {image} is only run by a container executor \
             (--executor podman or docker); set command"
        ),
        None => "the container has no command".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::executor::ContainerSpec;

    fn step(dir: &Path, working_dir: &str) -> StepProcess {
        StepProcess {
            main: ContainerSpec {
                command: vec!["sh".into(), "-c".into(), "pwd".into()],
                working_dir: Some(working_dir.into()),
                ..Default::default()
            },
            step_dir: dir.join("step"),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn a_missing_working_directory_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let host = Host::new(Vec::new());
        let logs: LogSink = Arc::new(|_: &str, _: Vec<String>| {});
        let missing = dir.path().join("no/such/dir").display().to_string();
        let out = host
            .run(step(dir.path(), &missing), logs.clone(), CancellationToken::new())
            .await;
        assert_eq!(
            out.start_error.as_deref(),
            Some(
                format!(
                    "the working directory {missing} does not exist; the host executor runs a step in the host's \
                     directories"
                )
                .as_str()
            )
        );
        let here = dir.path().display().to_string();
        let out = host.run(step(dir.path(), &here), logs, CancellationToken::new()).await;
        assert_eq!((out.exit_code, out.result), (Some(0), here));
    }
}
