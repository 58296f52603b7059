//! Helpers shared by the end-to-end tests in `tests/tests/`: finding the real
//! `argon` binary and running it.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the repo")
        .to_path_buf()
}

/// `../shared/conformance/argo-events/examples` beside the repository.
pub fn conformance_dir() -> PathBuf {
    repo_root().join("../shared/conformance/argo-events/examples")
}

/// The `argon` binary of this build. Cargo builds workspace binaries before
/// integration tests only for their own package, so the binary is built
/// once here when it is not next to the test executable yet.
pub fn argon_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        // The test runs from target/<profile>/deps/; the binary sits in target/<profile>/.
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>");
        let bin = profile_dir.join("argon");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-q", "-p", "argon", "--bin", "argon"])
            .current_dir(repo_root());
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            cmd.arg("--release");
        }
        if let Some(target_dir) = profile_dir.parent() {
            cmd.env("CARGO_TARGET_DIR", target_dir);
        }
        let status = cmd.status().expect("run cargo build -p argon");
        assert!(status.success(), "cargo build -p argon failed");
        assert!(bin.exists(), "argon binary not found at {}", bin.display());
        bin
    })
    .clone()
}

/// The executor the end-to-end tests' steps run on: the sandbox, whatever
/// container runtime the machine may have (`env` in a test can override it).
pub const EXECUTOR: &str = "sandbox";

/// Runs `argon ARGS...` to completion.
pub fn argon(args: &[&str]) -> Output {
    Command::new(argon_bin())
        .args(args)
        .current_dir(repo_root())
        .env("ARGON_EXECUTOR", EXECUTOR)
        .output()
        .expect("run argon")
}

/// A running `argon` process whose output is collected as it comes, killed
/// on drop.
pub struct Proc {
    child: Option<std::process::Child>,
    output: std::sync::Arc<std::sync::Mutex<String>>,
    name: String,
}

impl Proc {
    /// Starts `argon ARGS...` with extra environment variables.
    pub fn spawn(name: &str, args: &[&str], env: &[(&str, &str)]) -> Proc {
        use std::process::Stdio;
        let mut cmd = Command::new(argon_bin());
        cmd.args(args)
            .current_dir(repo_root())
            .env("ARGON_EXECUTOR", EXECUTOR)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap_or_else(|e| panic!("start {name}: {e}"));
        let output = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        for stream in [Box::new(stdout) as Box<dyn std::io::Read + Send>, Box::new(stderr)] {
            let output = output.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut out = output.lock().unwrap_or_else(|p| p.into_inner());
                    out.push_str(&line);
                    out.push('\n');
                }
            });
        }
        Proc {
            child: Some(child),
            output,
            name: name.to_string(),
        }
    }

    /// Everything the process printed so far (stdout and stderr).
    pub fn output(&self) -> String {
        self.output.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Waits until the output contains `text`; panics with the output after `timeout`.
    pub fn wait_for_output(&self, text: &str, timeout: std::time::Duration) {
        let name = &self.name;
        wait_until(timeout, &format!("{name} to print {text:?}"), || {
            self.output().contains(text)
        })
        .unwrap_or_else(|e| panic!("{e}\n--- {name} output ---\n{}", self.output()));
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// SIGKILL, as a crash would, and reap it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then waits for the exit (at most `timeout`) and returns its code.
    pub fn terminate(&mut self, timeout: std::time::Duration) -> Option<i32> {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        let mut child = self.child.take()?;
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        let deadline = std::time::Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return status.code();
            }
            if std::time::Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{} did not exit within {timeout:?} of SIGTERM\n{}",
                    self.name,
                    self.output()
                );
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `condition` until it holds or `timeout` passes; the error names
/// what was awaited. Polling (20 ms) is the wait, never a fixed sleep.
pub fn wait_until(timeout: std::time::Duration, what: &str, mut condition: impl FnMut() -> bool) -> Result<(), String> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if condition() {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(format!("timed out after {timeout:?} waiting for {what}"));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// A copy of an example folder in a temp dir, with every `port: "N"` moved to
/// a free port so tests never collide with each other or with a user's run.
pub struct Example {
    pub dir: tempfile::TempDir,
    /// Original port -> the free port that replaced it.
    pub ports: std::collections::BTreeMap<u16, u16>,
}

impl Example {
    /// Copies `examples/NAME` (recursively) and rewrites its ports; `extra`
    /// replacements (from, to) are applied to every file too.
    pub fn prepare(name: &str, extra: &[(&str, &str)]) -> Example {
        let src = repo_root().join("examples").join(name);
        let dir = tempfile::tempdir().expect("temp dir");
        let mut ports = std::collections::BTreeMap::new();
        copy_tree(&src, dir.path(), &mut ports, extra);
        Example { dir, ports }
    }

    /// The free port that replaced `original`.
    pub fn port(&self, original: u16) -> u16 {
        *self
            .ports
            .get(&original)
            .unwrap_or_else(|| panic!("example has no port {original}"))
    }

    pub fn path(&self) -> &str {
        self.dir.path().to_str().expect("utf-8 temp path")
    }

    /// `argon run` of this example with its state in `state`, its API on
    /// `api`, `extra` arguments and `env`; returns once it says it is ready
    /// (within two minutes).
    pub fn run(&self, state: &Path, api: &str, extra: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut args = vec![
            "run",
            self.path(),
            "--state-dir",
            state.to_str().expect("utf-8 temp path"),
            "--api-addr",
            api,
        ];
        args.extend_from_slice(extra);
        let p = Proc::spawn("argon run", &args, env);
        p.wait_for_output("argon run: ready", std::time::Duration::from_secs(120));
        p
    }
}

fn copy_tree(src: &Path, dst: &Path, ports: &mut std::collections::BTreeMap<u16, u16>, extra: &[(&str, &str)]) {
    std::fs::create_dir_all(dst).expect("create dir");
    let mut entries: Vec<PathBuf> = std::fs::read_dir(src)
        .expect("read example")
        .map(|e| e.expect("entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let target = dst.join(path.file_name().expect("file name"));
        if path.is_dir() {
            copy_tree(&path, &target, ports, extra);
            continue;
        }
        let mut text = std::fs::read_to_string(&path).expect("read example file");
        let mut out = String::with_capacity(text.len());
        for line in text.lines() {
            let trimmed = line.trim_start();
            if let Some(rest) = trimmed.strip_prefix("port: \"")
                && let Some(number) = rest.strip_suffix('"')
                && let Ok(original) = number.parse::<u16>()
            {
                let free = *ports.entry(original).or_insert_with(free_port);
                out.push_str(&line.replace(number, &free.to_string()));
            } else {
                out.push_str(line);
            }
            out.push('\n');
        }
        text = out;
        for (from, to) in extra {
            text = text.replace(from, to);
        }
        std::fs::write(&target, text).expect("write example copy");
    }
}

/// A TCP port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// The engine's REST API, as the tests read it.
pub struct Api {
    pub base: String,
}

impl Api {
    pub fn new(addr: &str) -> Api {
        Api {
            base: format!("http://{addr}"),
        }
    }

    /// Every workflow in the namespace `default`.
    pub fn workflows(&self) -> Vec<serde_json::Value> {
        let url = format!("{}/api/v1/workflows/default", self.base);
        match http("GET", &url, &[], "") {
            Some((200, body)) => serde_json::from_str::<serde_json::Value>(&body)
                .map(|v| v["items"].as_array().cloned().unwrap_or_default())
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// One workflow with its full status (nodes included).
    pub fn get(&self, name: &str) -> serde_json::Value {
        let url = format!("{}/api/v1/workflows/default/{name}", self.base);
        match http("GET", &url, &[], "") {
            Some((200, body)) => serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {url}: {e}: {body}")),
            other => panic!("GET {url}: {other:?}"),
        }
    }

    /// The phases of all workflows.
    pub fn phases(&self) -> Vec<String> {
        self.workflows()
            .iter()
            .map(|w| w["status"]["phase"].as_str().unwrap_or("").to_string())
            .collect()
    }

    /// Waits until `n` workflows exist and all have finished; returns them.
    pub fn wait_finished(&self, n: usize, timeout: std::time::Duration) -> Vec<serde_json::Value> {
        let mut last = Vec::new();
        let done = wait_until(timeout, &format!("{n} finished workflows"), || {
            last = self.phases();
            last.len() >= n
                && last
                    .iter()
                    .all(|p| matches!(p.as_str(), "Succeeded" | "Failed" | "Error"))
        });
        if let Err(e) = done {
            panic!("{e}; phases now: {last:?}");
        }
        self.workflows()
    }

    /// The log text of a workflow.
    pub fn logs(&self, name: &str) -> String {
        let out = argon(&["logs", name, "--server", &self.base]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

/// POSTs a JSON body; returns the status code (0 when nothing answered).
pub fn post_json(url: &str, body: &serde_json::Value) -> u16 {
    http("POST", url, &[("Content-Type", "application/json")], &body.to_string()).map_or(0, |(status, _)| status)
}

/// One plain-HTTP/1.1 request (`Connection: close`); the status and body, or
/// `None` when the server could not be reached or answered garbage. Written
/// on std because the tests only speak plain HTTP to local servers and a
/// client crate would bring TLS features into the test build.
pub fn http(method: &str, url: &str, headers: &[(&str, &str)], body: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let rest = url.strip_prefix("http://")?;
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_string()), |(a, p)| (a, format!("/{p}")));
    let mut stream = std::net::TcpStream::connect(authority).ok()?;
    stream.set_read_timeout(Some(std::time::Duration::from_secs(60))).ok()?;
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).ok()?;
    let text = String::from_utf8_lossy(&response);
    let (head, rest) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
    Some((status, if chunked { dechunk(rest) } else { rest.to_string() }))
}

/// The body of a chunked response.
fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}
