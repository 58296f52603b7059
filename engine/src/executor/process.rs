//! Runs a step's command as a host process (bare or under bubblewrap):
//! its own process group, output read line by line, the whole group killed
//! on timeout or when the workflow is stopped. Shared by [`super::host`]
//! and [`super::sandbox`].

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_util::sync::CancellationToken;

use super::lines::Lines;
use super::{LogSink, StepOutcome};

/// The PATH a step's program is searched on: `extra` in front of the step's
/// own `PATH` (or the engine's).
pub(crate) fn search_path(extra: &[String], env: &[(String, String)]) -> String {
    let base = env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .or_else(|| std::env::var("PATH").ok())
        .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".to_string());
    let mut parts = extra.to_vec();
    parts.push(base);
    parts.join(":")
}

/// Whether `program` can be run, searching `path` for a bare name.
pub(crate) fn found(program: &str, path: &str) -> bool {
    if program.contains('/') {
        return Path::new(program).exists();
    }
    path.split(':')
        .filter(|d| !d.is_empty())
        .any(|d| Path::new(d).join(program).is_file())
}

/// Runs `command` to its end: `timeout` and `cancel` kill its process group.
pub(crate) async fn run(
    mut command: tokio::process::Command,
    program: &str,
    image: Option<&str>,
    timeout: Option<Duration>,
    logs: LogSink,
    cancel: CancellationToken,
) -> StepOutcome {
    let mut outcome = StepOutcome::default();
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = match command.spawn() {
        Ok(c) => c,
        Err(e) => return StepOutcome::not_started(format!("cannot start {program}: {e}")),
    };
    let pgid = child.id();
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let mut out_task = tokio::spawn(read(stdout, Lines::new("stdout", logs.clone(), true)));
    let err_task = tokio::spawn(read(stderr, Lines::new("stderr", logs, false)));
    let deadline = async {
        match timeout {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    let status = tokio::select! {
        s = child.wait() => s.ok(),
        _ = deadline => {
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
    // ended (without a sandbox's PID namespace to end them): give the pipes
    // a moment, then kill the group.
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
    if outcome.exit_code == Some(127) && outcome.last_stderr.contains("not found") {
        let missing = outcome
            .last_stderr
            .trim_end_matches(": not found")
            .trim_end_matches(": command not found");
        outcome.reason = Some(super::not_found_message(missing, image));
    }
    outcome
}

fn kill_group(pgid: Option<u32>) {
    if let Some(pgid) = pgid.and_then(|p| i32::try_from(p).ok()) {
        // Already gone (ESRCH) is the common case once the step has ended.
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), nix::sys::signal::Signal::SIGKILL);
    }
}

/// Reads a pipe to its end into `lines`.
async fn read(pipe: Option<impl AsyncRead + Unpin>, mut lines: Lines) -> (String, String) {
    if let Some(mut pipe) = pipe {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match pipe.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => lines.feed(&buf[..n]),
            }
        }
    }
    lines.finish()
}
