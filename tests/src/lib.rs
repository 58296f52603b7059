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
