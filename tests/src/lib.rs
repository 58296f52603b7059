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

/// Runs `argon ARGS...` to completion.
pub fn argon(args: &[&str]) -> Output {
    Command::new(argon_bin())
        .args(args)
        .current_dir(repo_root())
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
