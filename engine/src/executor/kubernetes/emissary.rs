//! `argon emissary`: the part of Argon inside a step's pod, as Argo's
//! emissary is. The pod's first init container (the Argon image) runs
//! `argon emissary init`, which copies the `argon` binary into the pod's
//! shared `/var/run/argon` folder and fetches the step's inputs there; the
//! main container's command is wrapped as `/var/run/argon/argon emissary
//! run -- COMMAND...`, which runs it, passes its output through to the pod
//! log, and sends back its outcome and the paths it hands over.
//!
//! Configured through the environment the engine puts in the pod spec:
//! `ARGON_STEP_URL` (the step's transfer URL on the engine's API),
//! `ARGON_STEP_TOKEN`, `ARGON_OUTPUTS` (a JSON list of paths) and
//! `ARGON_DIR` (the shared folder, `/var/run/argon` by default).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::transfer::{OUTCOME_FILE, Outcome};
use crate::executor::lines::Lines;
use crate::executor::{LogSink, relative};

/// The pod's shared folder.
pub const DIR: &str = "/var/run/argon";

/// How long the emissary keeps trying to reach an engine that is away (a
/// restart) before giving up.
const REACH_FOR: Duration = Duration::from_secs(30 * 60);

/// What the emissary reads from its environment.
#[derive(Clone, Debug)]
pub struct Env {
    pub url: String,
    pub token: String,
    pub outputs: Vec<String>,
    pub dir: PathBuf,
}

impl Env {
    /// From the process environment.
    pub fn from_process() -> Result<Env, String> {
        let var =
            |k: &str| std::env::var(k).map_err(|_| format!("{k} is not set: argon emissary runs inside a step's pod"));
        let outputs = match std::env::var("ARGON_OUTPUTS") {
            Ok(v) if !v.is_empty() => serde_json::from_str(&v).map_err(|e| format!("ARGON_OUTPUTS: {e}"))?,
            _ => Vec::new(),
        };
        Ok(Env {
            url: var("ARGON_STEP_URL")?.trim_end_matches('/').to_string(),
            token: var("ARGON_STEP_TOKEN")?,
            outputs,
            dir: std::env::var("ARGON_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|_| PathBuf::from(DIR)),
        })
    }
}

fn client() -> Result<reqwest::Client, String> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| format!("cannot build the HTTP client: {e}"))
}

/// Sends `request` again while the engine cannot be reached or answers
/// 503 (it restarts), up to [`REACH_FOR`]; another answer is final.
async fn send(what: &str, mut request: impl FnMut() -> reqwest::RequestBuilder) -> Result<reqwest::Response, String> {
    let start = Instant::now();
    let mut delay = Duration::from_millis(200);
    loop {
        let last = match request().send().await {
            Ok(r) if r.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE => "the engine is not ready".to_string(),
            Ok(r) if r.status().is_success() => return Ok(r),
            Ok(r) => {
                let status = r.status();
                let text = r.text().await.unwrap_or_default();
                return Err(format!("{what}: the engine answered {status}: {}", text.trim()));
            }
            Err(e) => format!("{e}"),
        };
        if start.elapsed() > REACH_FOR {
            return Err(format!("{what}: gave up after {}s: {last}", REACH_FOR.as_secs()));
        }
        tracing::warn!("{what}: {last}; trying again");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

/// `argon emissary init`: copies this binary into the shared folder and
/// unpacks the step's inputs there.
pub async fn init(env: &Env) -> Result<(), String> {
    let dir = &env.dir;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let me = std::env::current_exe().map_err(|e| format!("cannot find the argon binary: {e}"))?;
    let copy = dir.join("argon");
    std::fs::copy(&me, &copy).map_err(|e| format!("cannot copy {} to {}: {e}", me.display(), copy.display()))?;
    set_mode(&copy, 0o755)?;
    let http = client()?;
    let url = format!("{}/inputs", env.url);
    let response = send("fetching the step's inputs", || http.get(&url).bearer_auth(&env.token)).await?;
    if response.status() == reqwest::StatusCode::NO_CONTENT {
        return Ok(());
    }
    let tar_file = dir.join(".inputs.tar");
    save(response, &tar_file).await?;
    let into = dir.clone();
    tokio::task::spawn_blocking(move || {
        let file = std::fs::File::open(&tar_file).map_err(|e| e.to_string())?;
        let mut archive = tar::Archive::new(std::io::BufReader::new(file));
        archive.set_preserve_permissions(true);
        archive
            .unpack(&into)
            .map_err(|e| format!("cannot unpack the inputs: {e}"))?;
        std::fs::remove_file(&tar_file).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

async fn save(mut response: reqwest::Response, file: &Path) -> Result<(), String> {
    use tokio::io::AsyncWriteExt;
    let mut out = tokio::fs::File::create(file)
        .await
        .map_err(|e| format!("{}: {e}", file.display()))?;
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("the download broke off: {e}"))?
    {
        out.write_all(&chunk).await.map_err(|e| e.to_string())?;
    }
    out.flush().await.map_err(|e| e.to_string())
}

fn set_mode(file: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(file, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("{}: {e}", file.display()))
}

/// `argon emissary run -- ARGV...`: runs the step's command with its output
/// passed through, then sends back its outcome and outputs. Returns the
/// exit code to end with: the command's.
pub async fn run(env: &Env, argv: &[String]) -> i32 {
    run_with(env, argv, &[], tokio::io::stdout(), tokio::io::stderr()).await
}

/// [`run`] with extra variables for the command and its output passed to
/// `stdout` and `stderr` (the pod log, or a test's files).
pub async fn run_with<O, E>(env: &Env, argv: &[String], vars: &[(String, String)], stdout: O, stderr: E) -> i32
where
    O: tokio::io::AsyncWrite + Unpin + Send + 'static,
    E: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let outcome = run_command(argv, vars, stdout, stderr).await;
    let code = outcome.exit_code;
    if let Err(e) = send_back(env, &outcome).await {
        eprintln!("argon emissary: {e}");
        let _ = std::fs::write("/dev/termination-log", &e);
    }
    code
}

/// Runs the command, its stdout and stderr passed through as they come.
async fn run_command<O, E>(argv: &[String], vars: &[(String, String)], own_out: O, own_err: E) -> Outcome
where
    O: tokio::io::AsyncWrite + Unpin + Send + 'static,
    E: tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Some((program, args)) = argv.split_first() else {
        return failed(127, "no command to run".to_string());
    };
    let mut child = match tokio::process::Command::new(program)
        .args(args)
        .envs(vars.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return failed(127, format!("{program}: not found")),
        Err(e) => return failed(126, format!("{program}: {e}")),
    };
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr = child.stderr.take().expect("piped stderr");
    let out = tokio::spawn(pass_through(stdout, own_out, true));
    let err = tokio::spawn(pass_through(stderr, own_err, false));
    // A pod that is deleted sends SIGTERM to its containers' first process,
    // this one: it goes on to the command.
    let pid = child.id();
    let forward = tokio::spawn(async move {
        let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
            return;
        };
        while term.recv().await.is_some() {
            if let Some(pid) = pid {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
            }
        }
    });
    let status = child.wait().await;
    forward.abort();
    let (result, _) = out.await.unwrap_or_default();
    let (_, last_stderr) = err.await.unwrap_or_default();
    let exit_code = match status {
        Ok(s) => {
            use std::os::unix::process::ExitStatusExt;
            s.code().or_else(|| s.signal().map(|sig| 128 + sig)).unwrap_or(1)
        }
        Err(e) => return failed(1, format!("{program}: {e}")),
    };
    Outcome {
        exit_code,
        result,
        last_stderr,
        error: None,
    }
}

/// Passes a stream of the command through to ours as it comes, splitting
/// it as the executors' log streams are: (the text kept as the result when
/// `capture`, the last non-empty line).
async fn pass_through<R, W>(mut from: R, mut to: W, capture: bool) -> (String, String)
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    // The pod log carries the lines; only the result and the last line are kept.
    let discard: LogSink = std::sync::Arc::new(|_: &str, _: Vec<String>| {});
    let mut lines = Lines::new("", discard, capture);
    let mut buf = vec![0u8; 64 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 {
            break;
        }
        let _ = to.write_all(&buf[..n]).await;
        let _ = to.flush().await;
        lines.feed(&buf[..n]);
    }
    lines.finish()
}

fn failed(code: i32, message: String) -> Outcome {
    eprintln!("{message}");
    Outcome {
        exit_code: code,
        result: String::new(),
        last_stderr: message.clone(),
        error: Some(message),
    }
}

/// Packs the outcome and the output paths that exist (a file on disk, so
/// any size goes in bounded memory) and sends them to the engine.
async fn send_back(env: &Env, outcome: &Outcome) -> Result<(), String> {
    // The shared folder is writable whatever the image (a read-only root, no /tmp).
    let tar_file = env.dir.join(".outputs.tar");
    let (packed, paths, record) = (tar_file.clone(), env.outputs.clone(), outcome.clone());
    tokio::task::spawn_blocking(move || pack_outputs(&packed, &paths, &record))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot pack the outputs: {e}"))?;
    let http = client()?;
    let url = format!("{}/outputs", env.url);
    let sent = send("sending the step's outputs", || {
        let file = tar_file.clone();
        let body = futures::stream::once(async move { tokio::fs::File::open(file).await })
            .map_ok(tokio_util::io::ReaderStream::new)
            .try_flatten();
        http.put(&url)
            .bearer_auth(&env.token)
            .header("content-type", "application/x-tar")
            .body(reqwest::Body::wrap_stream(body))
    })
    .await;
    let _ = std::fs::remove_file(&tar_file);
    sent.map(|_| ())
}

use futures::TryStreamExt as _;

fn pack_outputs(tar_file: &Path, paths: &[String], outcome: &Outcome) -> std::io::Result<()> {
    let mut b = tar::Builder::new(std::io::BufWriter::new(std::fs::File::create(tar_file)?));
    b.follow_symlinks(true);
    for path in paths {
        let source = Path::new(path);
        let name = Path::new("fs").join(relative(path));
        match std::fs::metadata(source) {
            Ok(m) if m.is_dir() => b.append_dir_all(&name, source)?,
            Ok(_) => b.append_path_with_name(source, &name)?,
            // A path the step did not write: the engine says which output is missing.
            Err(_) => continue,
        }
    }
    let text = serde_json::to_vec(outcome).map_err(std::io::Error::other)?;
    let mut h = tar::Header::new_gnu();
    h.set_size(text.len() as u64);
    h.set_mode(0o644);
    h.set_mtime(0);
    b.append_data(&mut h, OUTCOME_FILE, text.as_slice())?;
    use std::io::Write;
    b.into_inner()?.flush()
}
