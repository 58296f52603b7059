//! Helpers for tests and benchmarks (feature `testing`): a Podman API
//! service of the test binary's own, on a socket in a temp dir, and the
//! names of the images `scripts/test-images` builds locally.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Debian's static busybox, as `localhost/argon-test/busybox:1`.
pub const BUSYBOX: &str = "localhost/argon-test/busybox:1";
/// A Debian rootfs with python3.
pub const PYTHON: &str = "localhost/argon-test/python:1";
/// Busybox with `ENTRYPOINT ["echo"]` and `USER 1000`.
pub const GREETER: &str = "localhost/argon-test/greeter:1";

/// A `podman system service` on a socket of its own.
pub struct Podman {
    _dir: tempfile::TempDir,
    socket: String,
}

impl Podman {
    /// The service's socket, as `unix:///PATH`.
    pub fn socket(&self) -> &str {
        &self.socket
    }
}

/// The Podman service of this test binary, started at the first call. It
/// ends with the binary: its shell waits on a pipe this process holds open.
/// Panics when podman or the test images are missing, saying what to run.
pub fn podman() -> &'static Podman {
    static PODMAN: OnceLock<Podman> = OnceLock::new();
    PODMAN.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temp dir");
        let sock = dir.path().join("podman.sock");
        let socket = format!("unix://{}", sock.display());
        let child = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "podman system service --time=0 {socket} >{log} 2>&1 & pid=$!; read _; kill $pid",
                log = dir.path().join("podman.log").display()
            ))
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("podman is needed for these tests: run ./scripts/test, which installs it");
        // Keep the pipe open for the life of the binary.
        std::mem::forget(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !sock.exists() {
            assert!(Instant::now() < deadline, "podman system service did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        for image in [BUSYBOX, PYTHON, GREETER] {
            let ok = std::process::Command::new("podman")
                .args(["image", "exists", image])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "image {image} is missing: run ./scripts/test-images");
        }
        Podman { _dir: dir, socket }
    })
}

/// The names of the containers (running or not) Argon made for workflow `uid`.
pub fn containers_of(uid: &str) -> Vec<String> {
    let out = std::process::Command::new("podman")
        .args(["ps", "-a", "--format", "{{.Names}}", "--filter"])
        .arg(format!("label={}={uid}", crate::executor::container::WORKFLOW_LABEL))
        .output()
        .expect("run podman ps");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}
