//! The bubblewrap sandbox of a step: the host's top-level directories bound
//! as they are, `/dev` and `/proc`, a private `/tmp` (the step's `tmp`
//! directory), private top-level directories the host lacks (the step's
//! `root/NAME`), and bind mounts for input artifacts in host directories.

use std::path::{Component, Path, PathBuf};

use super::StepProcess;

/// An entry at the root of the host filesystem.
#[derive(Clone, Debug)]
enum RootEntry {
    Dir(String),
    Symlink(String, String),
}

/// Bubblewrap and the host layout it reproduces.
#[derive(Clone, Debug)]
pub struct Sandbox {
    bwrap: PathBuf,
    entries: Vec<RootEntry>,
}

/// Host root entries the sandbox replaces or leaves out.
const SKIPPED: [&str; 6] = ["tmp", "proc", "dev", "lost+found", "old_root", "argo"];

impl Sandbox {
    /// The sandbox, when `bwrap` is installed and works here. Probed once
    /// per process: executors created at the same time must not race on the
    /// probe, and the answer does not change while the process runs.
    pub fn detect() -> Option<Sandbox> {
        static DETECTED: std::sync::OnceLock<Option<Sandbox>> = std::sync::OnceLock::new();
        DETECTED.get_or_init(Self::probe).clone()
    }

    fn probe() -> Option<Sandbox> {
        let bwrap = ["/usr/bin/bwrap", "/usr/local/bin/bwrap", "/bin/bwrap"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file())?;
        let mut entries = Vec::new();
        for e in std::fs::read_dir("/").ok()?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if SKIPPED.contains(&name.as_str()) || name.starts_with('.') {
                continue;
            }
            let Ok(meta) = std::fs::symlink_metadata(e.path()) else {
                continue;
            };
            if meta.file_type().is_symlink() {
                if let Ok(target) = std::fs::read_link(e.path()) {
                    entries.push(RootEntry::Symlink(target.display().to_string(), name));
                }
            } else if meta.is_dir() {
                entries.push(RootEntry::Dir(name));
            }
        }
        entries.sort_by(|a, b| entry_name(a).cmp(entry_name(b)));
        let sandbox = Sandbox { bwrap, entries };
        // bwrap may be installed but unusable (no user namespaces): check once.
        let probe_dir = std::env::temp_dir().join(format!("argon-bwrap-probe-{}", std::process::id()));
        std::fs::create_dir_all(probe_dir.join("tmp")).ok()?;
        let step = StepProcess {
            step_dir: probe_dir.clone(),
            ..Default::default()
        };
        let mut cmd: std::process::Command = sandbox.command(&step, &[], &["true".to_string()]).into_std();
        let ok = cmd
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        let _ = std::fs::remove_dir_all(&probe_dir);
        if ok {
            Some(sandbox)
        } else {
            tracing::warn!("bubblewrap is installed but cannot create a sandbox here; steps run without one");
            None
        }
    }

    fn is_host_top(&self, top: &str) -> bool {
        self.entries.iter().any(|e| entry_name(e) == top) || top == "proc" || top == "dev"
    }

    /// The host location of `path` as the step sees it.
    pub fn host_path(&self, step_dir: &Path, path: &str) -> PathBuf {
        let rel = relative(path);
        let top = rel
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned());
        match top.as_deref() {
            Some("tmp") => step_dir.join(&rel),
            Some(t) if self.is_host_top(t) => PathBuf::from("/").join(rel),
            Some(_) => step_dir.join("root").join(rel),
            None => step_dir.join("root"),
        }
    }

    /// Where an input artifact for `path` is placed, and its bind target.
    /// A path inside a host directory is bind-mounted over what the host
    /// has there; a path the host lacks there cannot be created without
    /// changing the host, and is refused.
    pub fn input_place(&self, step_dir: &Path, path: &str, index: usize) -> Result<(PathBuf, Option<String>), String> {
        let rel = relative(path);
        let top = rel
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned());
        match top.as_deref() {
            Some(t) if t != "tmp" && self.is_host_top(t) => {
                if !Path::new("/").join(&rel).exists() {
                    return Err(format!(
                        "{path} is inside the host directory /{t} and does not exist there; local mode places \
                         artifacts under /tmp, under top-level directories the host lacks, or over existing paths"
                    ));
                }
                Ok((step_dir.join("mounts").join(index.to_string()), Some(path.to_string())))
            }
            _ => Ok((self.host_path(step_dir, path), None)),
        }
    }

    /// Creates the private top-level directory `path` lives in, when the host lacks it.
    pub fn prepare(&self, step_dir: &Path, path: &str) -> std::io::Result<()> {
        let rel = relative(path);
        if let Some(Component::Normal(top)) = rel.components().next() {
            let top = top.to_string_lossy();
            if top != "tmp" && !self.is_host_top(&top) {
                std::fs::create_dir_all(step_dir.join("root").join(top.as_ref()))?;
            }
        }
        Ok(())
    }

    /// The bwrap command running `argv` for `step`.
    pub fn command(
        &self,
        step: &StepProcess,
        mounts: &[(PathBuf, String)],
        argv: &[String],
    ) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(&self.bwrap);
        // A PID namespace: when the step's process ends, whatever it left running goes with it.
        c.args(["--die-with-parent", "--unshare-pid"]);
        for e in &self.entries {
            match e {
                RootEntry::Dir(name) => {
                    let p = format!("/{name}");
                    c.args(["--bind", &p, &p]);
                }
                RootEntry::Symlink(target, name) => {
                    c.args(["--symlink", target, &format!("/{name}")]);
                }
            }
        }
        c.args(["--dev-bind", "/dev", "/dev", "--proc", "/proc"]);
        c.arg("--bind").arg(step.step_dir.join("tmp")).arg("/tmp");
        if let Ok(dirs) = std::fs::read_dir(step.step_dir.join("root")) {
            for d in dirs.flatten() {
                let name = d.file_name().to_string_lossy().into_owned();
                c.arg("--bind").arg(d.path()).arg(format!("/{name}"));
            }
        }
        for (host, path) in mounts {
            c.arg("--bind").arg(host).arg(path);
        }
        if let Some(uid) = step.run_as_user {
            c.args(["--unshare-user", "--uid", &uid.to_string()]);
        }
        c.args(["--chdir", step.working_dir.as_deref().unwrap_or("/tmp")]);
        c.arg("--");
        c.args(argv);
        c
    }
}

fn entry_name(e: &RootEntry) -> &str {
    match e {
        RootEntry::Dir(n) => n,
        RootEntry::Symlink(_, n) => n,
    }
}

/// `path` without its leading `/`, with `.` and `..` resolved lexically.
fn relative(path: &str) -> PathBuf {
    let mut out = PathBuf::new();
    for c in Path::new(path).components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}
