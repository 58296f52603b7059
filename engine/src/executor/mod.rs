//! The executor: runs one leaf step (a container or script template) as a
//! real process on the host, in its own sandbox, captures its stdout and
//! stderr line by line, and kills its whole process group on timeout or
//! when the workflow is stopped.
//!
//! With bubblewrap the step sees the host's filesystem except `/tmp`, which
//! is private to the step (a directory of the step under the state dir), and
//! top-level paths the host does not have (`/work`, `/src`), which are
//! private directories too; input artifacts are placed there or bind-mounted
//! at their path. Without bubblewrap, steps share the host filesystem (the
//! engine warns once).

mod sandbox;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio_util::sync::CancellationToken;

pub use sandbox::Sandbox;

/// The most of a step's stdout kept as `outputs.result`.
pub const RESULT_LIMIT: usize = 256 * 1024;

/// How steps are isolated.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SandboxMode {
    /// Bubblewrap when `bwrap` is installed, else none.
    #[default]
    Auto,
    /// Bubblewrap; an error when it is not installed.
    Bubblewrap,
    /// No sandbox: steps share the host filesystem.
    None,
}

/// What to run for one step.
#[derive(Clone, Debug, Default)]
pub struct StepProcess {
    /// The command and its arguments (for a script, the interpreter; the
    /// script's path is appended).
    pub argv: Vec<String>,
    /// Environment variables added to the engine's.
    pub env: Vec<(String, String)>,
    /// The working directory inside the sandbox.
    pub working_dir: Option<String>,
    /// The image the template names (recorded; used in messages).
    pub image: Option<String>,
    /// The step's private directory under the state dir.
    pub step_dir: PathBuf,
    /// A script template's source.
    pub script: Option<String>,
    /// Files or directories bind-mounted at a path (host, path in the sandbox).
    pub mounts: Vec<(PathBuf, String)>,
    /// Kill the process after this long.
    pub timeout: Option<Duration>,
    /// Run as this user id (`securityContext.runAsUser`), with bubblewrap.
    pub run_as_user: Option<i64>,
}

/// How a step's process ended.
#[derive(Clone, Debug, Default)]
pub struct StepOutcome {
    /// The exit code; `None` when the process was killed or never started.
    pub exit_code: Option<i32>,
    /// Stdout, capped at [`RESULT_LIMIT`], without its final newline.
    pub result: String,
    /// The last line the step wrote to stderr.
    pub last_stderr: String,
    /// The process was killed because its timeout passed.
    pub timed_out: bool,
    /// The process was killed because the workflow was stopped.
    pub cancelled: bool,
    /// The process could not be started, and why.
    pub start_error: Option<String>,
}

/// Receives a step's output lines: (stream, lines).
pub type LogSink = Arc<dyn Fn(&str, Vec<String>) + Send + Sync>;

/// Runs steps.
pub struct Executor {
    sandbox: Option<Sandbox>,
    extra_path: Vec<PathBuf>,
    warned: AtomicBool,
}

impl Executor {
    /// An executor with the given sandbox; `extra_path` is put in front of
    /// `PATH` for every step.
    pub fn new(mode: SandboxMode, extra_path: Vec<PathBuf>) -> Result<Executor, String> {
        let sandbox = match mode {
            SandboxMode::None => None,
            SandboxMode::Auto => Sandbox::detect(),
            SandboxMode::Bubblewrap => Some(Sandbox::detect().ok_or_else(|| {
                "bubblewrap (bwrap) is not installed; install the bubblewrap package or run without a sandbox"
                    .to_string()
            })?),
        };
        Ok(Executor {
            sandbox,
            extra_path,
            warned: AtomicBool::new(false),
        })
    }

    /// Whether steps run in bubblewrap.
    pub fn sandboxed(&self) -> bool {
        self.sandbox.is_some()
    }

    /// Where the file the step sees at `path` is on the host.
    pub fn host_path(&self, step_dir: &Path, path: &str) -> PathBuf {
        match &self.sandbox {
            Some(s) => s.host_path(step_dir, path),
            None => PathBuf::from(path),
        }
    }

    /// Where to put an input artifact the step must see at `path`: the host
    /// location, and whether it must be bind-mounted (`Some(path)`) because
    /// it sits in a host directory the sandbox shares.
    pub fn input_place(&self, step_dir: &Path, path: &str, index: usize) -> Result<(PathBuf, Option<String>), String> {
        match &self.sandbox {
            Some(s) => s.input_place(step_dir, path, index),
            None => Ok((PathBuf::from(path), None)),
        }
    }

    /// Prepares the private directories the step's paths need (outputs and
    /// the working directory in top-level directories the host lacks).
    pub fn prepare_paths(&self, step_dir: &Path, paths: &[String]) -> std::io::Result<()> {
        std::fs::create_dir_all(step_dir.join("tmp"))?;
        if let Some(s) = &self.sandbox {
            for p in paths {
                s.prepare(step_dir, p)?;
            }
        }
        Ok(())
    }

    /// The PATH a step's program is searched on: on the host (`in_sandbox`
    /// false), or as the sandbox sees it, where the extra directories are
    /// mounted under `/argo/path/N` (they may sit in the host's /tmp).
    fn search_path(&self, env: &[(String, String)], in_sandbox: bool) -> String {
        let base = env
            .iter()
            .rev()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone())
            .or_else(|| std::env::var("PATH").ok())
            .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".to_string());
        let mut parts: Vec<String> = self
            .extra_path
            .iter()
            .enumerate()
            .map(|(i, p)| {
                if in_sandbox {
                    format!("/argo/path/{i}")
                } else {
                    p.display().to_string()
                }
            })
            .collect();
        parts.push(base);
        parts.join(":")
    }

    /// Whether `program` can be run, searching `path` for a bare name.
    fn found(program: &str, path: &str) -> bool {
        if program.contains('/') {
            return Path::new(program).exists();
        }
        path.split(':')
            .filter(|d| !d.is_empty())
            .any(|d| Path::new(d).join(program).is_file())
    }

    /// Runs the step to its end, streaming its output lines to `logs`.
    pub async fn run(&self, step: StepProcess, logs: LogSink, cancel: CancellationToken) -> StepOutcome {
        let mut outcome = StepOutcome::default();
        if step.argv.is_empty() {
            outcome.start_error = Some(match &step.image {
                Some(image) => format!(
                    "the container has no command: the entrypoint of image {image} is not run in local mode; \
                     set command"
                ),
                None => "the container has no command".to_string(),
            });
            return outcome;
        }
        let host_path = self.search_path(&step.env, false);
        let path = self.search_path(&step.env, self.sandbox.is_some());
        let program = step.argv[0].clone();
        if !Self::found(&program, &host_path) {
            outcome.start_error = Some(not_found_message(&program, step.image.as_deref()));
            return outcome;
        }
        if let Err(e) = std::fs::create_dir_all(step.step_dir.join("tmp")) {
            outcome.start_error = Some(format!("cannot create the step directory: {e}"));
            return outcome;
        }
        if let (Some(s), Some(wd)) = (&self.sandbox, &step.working_dir) {
            // A working directory in the step's private areas is created, as a container runtime does.
            let host = s.host_path(&step.step_dir, wd);
            if host.starts_with(&step.step_dir) {
                let _ = std::fs::create_dir_all(&host);
            }
        }
        let mut argv = step.argv.clone();
        let mut mounts = step.mounts.clone();
        if self.sandbox.is_some() {
            for (i, dir) in self.extra_path.iter().enumerate() {
                mounts.push((dir.clone(), format!("/argo/path/{i}")));
            }
        }
        if let Some(source) = &step.script {
            let file = step.step_dir.join("script");
            if let Err(e) = std::fs::write(&file, source) {
                outcome.start_error = Some(format!("cannot write the script: {e}"));
                return outcome;
            }
            if self.sandbox.is_some() {
                mounts.push((file, "/argo/staging/script".to_string()));
                argv.insert(1, "/argo/staging/script".to_string());
            } else {
                argv.insert(1, file.display().to_string());
            }
        }
        if let (None, Some(wd)) = (&self.sandbox, &step.working_dir)
            && !std::path::Path::new(wd).is_dir()
        {
            outcome.start_error = Some(format!(
                "the working directory {wd} does not exist; without a sandbox a step runs in the host's directories"
            ));
            return outcome;
        }
        let mut command = match &self.sandbox {
            Some(s) => s.command(&step, &mounts, &argv),
            None => {
                if !self.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "bubblewrap (bwrap) is not installed: steps run without a sandbox and share the host's /tmp; \
                         install the bubblewrap package to isolate them"
                    );
                }
                let mut c = tokio::process::Command::new(&argv[0]);
                c.args(&argv[1..]);
                let wd = step
                    .working_dir
                    .clone()
                    .map(PathBuf::from)
                    .unwrap_or_else(|| step.step_dir.join("tmp"));
                c.current_dir(wd);
                c.env("TMPDIR", step.step_dir.join("tmp"));
                c
            }
        };
        command.env("PATH", &path);
        for (k, v) in &step.env {
            if k != "PATH" {
                command.env(k, v);
            }
        }
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = match command.spawn() {
            Ok(c) => c,
            Err(e) => {
                outcome.start_error = Some(format!("cannot start {program}: {e}"));
                return outcome;
            }
        };
        let pgid = child.id();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let mut out_task = tokio::spawn(read_lines(stdout, "stdout", logs.clone(), true));
        let err_task = tokio::spawn(read_lines(stderr, "stderr", logs, false));
        let timeout = async {
            match step.timeout {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        let status = tokio::select! {
            s = child.wait() => s.ok(),
            _ = timeout => {
                outcome.timed_out = true;
                kill_group(pgid);
                let _ = child.wait().await;
                None
            }
            _ = cancel.cancelled() => {
                outcome.cancelled = true;
                kill_group(pgid);
                let _ = child.wait().await;
                None
            }
        };
        // Background children may hold the pipes open after the main process
        // ended (without a sandbox's PID namespace to end them): give the
        // pipes a moment, then kill the group.
        let (result, _) = match tokio::time::timeout(Duration::from_millis(200), &mut out_task).await {
            Ok(r) => r.unwrap_or_default(),
            Err(_) => {
                kill_group(pgid);
                out_task.await.unwrap_or_default()
            }
        };
        let (_, last_err) = err_task.await.unwrap_or_default();
        outcome.result = result;
        outcome.last_stderr = last_err;
        if let Some(s) = status {
            outcome.exit_code = s.code().or_else(|| {
                use std::os::unix::process::ExitStatusExt;
                s.signal().map(|sig| 128 + sig)
            });
        }
        outcome
    }
}

/// The message of a step whose command is not on this machine.
pub fn not_found_message(program: &str, image: Option<&str>) -> String {
    match image {
        Some(image) if !image.is_empty() => {
            format!("{program}: not found; image {image} is not run in local mode")
        }
        _ => format!("{program}: not found"),
    }
}

fn kill_group(pgid: Option<u32>) {
    if let Some(pgid) = pgid {
        // No unsafe code in the workspace: signal the group through kill(1).
        let _ = std::process::Command::new("kill")
            .arg("-KILL")
            .arg("--")
            .arg(format!("-{pgid}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// Reads lines to the sink; returns (captured text capped at the result
/// limit when `capture`, last line).
async fn read_lines(
    pipe: Option<impl AsyncRead + Unpin>,
    stream: &'static str,
    logs: LogSink,
    capture: bool,
) -> (String, String) {
    let Some(pipe) = pipe else {
        return Default::default();
    };
    let mut reader = BufReader::new(pipe);
    let mut captured = String::new();
    let mut last = String::new();
    let mut buf = Vec::new();
    let mut batch: Vec<String> = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                let text = String::from_utf8_lossy(&buf).into_owned();
                if capture && captured.len() < RESULT_LIMIT {
                    let room = RESULT_LIMIT - captured.len();
                    if text.len() <= room {
                        captured.push_str(&text);
                    } else {
                        let mut cut = room;
                        while !text.is_char_boundary(cut) {
                            cut -= 1;
                        }
                        captured.push_str(&text[..cut]);
                    }
                }
                let line = text.trim_end_matches(['\n', '\r']).to_string();
                if !line.is_empty() {
                    last = line.clone();
                }
                batch.push(line);
                // Flush what has arrived so far; a fast writer gets its lines batched.
                if reader.buffer().is_empty() || batch.len() >= 256 {
                    logs(stream, std::mem::take(&mut batch));
                }
            }
        }
    }
    if !batch.is_empty() {
        logs(stream, batch);
    }
    if captured.ends_with('\n') {
        captured.pop();
        if captured.ends_with('\r') {
            captured.pop();
        }
    }
    (captured, last)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn step(dir: &std::path::Path, working_dir: &str) -> StepProcess {
        StepProcess {
            argv: vec!["sh".into(), "-c".into(), "pwd".into()],
            working_dir: Some(working_dir.into()),
            step_dir: dir.join("step"),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn without_a_sandbox_a_missing_working_directory_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let executor = Executor::new(SandboxMode::None, Vec::new()).unwrap();
        let logs: LogSink = Arc::new(|_: &str, _: Vec<String>| {});
        let missing = dir.path().join("no/such/dir").display().to_string();
        let out = executor
            .run(step(dir.path(), &missing), logs.clone(), CancellationToken::new())
            .await;
        assert_eq!(
            out.start_error.as_deref(),
            Some(
                format!(
                    "the working directory {missing} does not exist; without a sandbox a step runs in the host's directories"
                )
                .as_str()
            )
        );
        let here = dir.path().display().to_string();
        let out = executor
            .run(step(dir.path(), &here), logs, CancellationToken::new())
            .await;
        assert_eq!((out.exit_code, out.result), (Some(0), here));
    }
}
