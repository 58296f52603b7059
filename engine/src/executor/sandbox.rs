//! The sandbox executor (`--executor sandbox`): a step is a host process in
//! a bubblewrap sandbox, for machines without a container runtime.
//!
//! What the step sees and may do:
//!
//! - the host's system directories (`/usr`, `/bin`, `/lib*`, `/sbin`,
//!   `/etc`, `/opt`) read-only, with every file and folder under `/etc` that
//!   the host keeps from other users (`/etc/shadow`, private keys...) hidden;
//!   the root itself is read-only;
//! - its own `/tmp` (the step's `tmp` directory), and private folders for
//!   the other top-level paths it uses (`/work`, `/mnt/out`, ...): nothing of
//!   the host's `/root`, `/home`, `/var`, `/srv`, its `/tmp` or Argon's
//!   state dir;
//! - its own PID, IPC, UTS and user namespaces, running as uid and gid 65534
//!   (or `securityContext.runAsUser`/`runAsGroup`) with no capabilities and
//!   `no_new_privs`, in a new session;
//! - no network at all (only a loopback of its own) unless the workflow sets
//!   `spec.hostNetwork: true`;
//! - at most 1024 open files, no core dumps, and `resources.limits.memory` as
//!   its address-space limit (CPU limits need a container executor).

use std::path::{Component, Path, PathBuf};

use tokio_util::sync::CancellationToken;

use super::host::{needs_containers, no_command};
use argon_crds::secret::Secrets;

use super::{
    Backend, ExecutorKind, ExecutorSettings, LogSink, StepOutcome, StepProcess, not_found_message, process, relative,
};

/// The host's system directories a step sees, read-only.
const SYSTEM: [&str; 10] = [
    "usr", "bin", "sbin", "lib", "lib32", "lib64", "libx32", "etc", "opt", "nix",
];

/// The uid and gid a step runs as when its template names none.
pub const NOBODY: i64 = 65534;

/// The open-file limit of a sandboxed step.
const MAX_FILES: u32 = 1024;

/// An entry at the root of the host filesystem the sandbox reproduces.
#[derive(Clone, Debug)]
enum RootEntry {
    Dir(String),
    Symlink(String, String),
}

/// Bubblewrap and the host layout it reproduces.
#[derive(Clone, Debug)]
pub struct Sandbox {
    bwrap: PathBuf,
    prlimit: Option<PathBuf>,
    entries: Vec<RootEntry>,
    /// Paths under the system directories that other users may not read.
    hidden: Vec<(PathBuf, bool)>,
}

impl Sandbox {
    /// The sandbox, when `bwrap` is installed and works here. Probed once
    /// per process: executors created at the same time must not race on the
    /// probe, and the answer does not change while the process runs.
    pub fn detect() -> Option<Sandbox> {
        static DETECTED: std::sync::OnceLock<Option<Sandbox>> = std::sync::OnceLock::new();
        DETECTED.get_or_init(Self::probe).clone()
    }

    fn probe() -> Option<Sandbox> {
        let find = |names: &[&str]| names.iter().map(PathBuf::from).find(|p| p.is_file());
        let bwrap = find(&["/usr/bin/bwrap", "/usr/local/bin/bwrap", "/bin/bwrap"])?;
        let prlimit = find(&["/usr/bin/prlimit", "/bin/prlimit"]);
        let mut entries = Vec::new();
        for name in SYSTEM {
            let path = Path::new("/").join(name);
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.file_type().is_symlink() {
                if let Ok(target) = std::fs::read_link(&path) {
                    entries.push(RootEntry::Symlink(target.display().to_string(), name.to_string()));
                }
            } else if meta.is_dir() {
                entries.push(RootEntry::Dir(name.to_string()));
            }
        }
        let mut hidden = Vec::new();
        private_entries(Path::new("/etc"), 0, &mut hidden);
        let sandbox = Sandbox {
            bwrap,
            prlimit,
            entries,
            hidden,
        };
        // bwrap may be installed but unusable (no user namespaces): check once.
        let probe_dir = std::env::temp_dir().join(format!("argon-bwrap-probe-{}", std::process::id()));
        std::fs::create_dir_all(probe_dir.join("tmp")).ok()?;
        let step = StepProcess {
            step_dir: probe_dir.clone(),
            ..Default::default()
        };
        let mut cmd: std::process::Command = sandbox
            .command(&step, &[], &["true".to_string()], "/usr/bin:/bin")
            .into_std();
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
            tracing::warn!("bubblewrap is installed but cannot create a sandbox here");
            None
        }
    }

    fn is_system_top(&self, top: &str) -> bool {
        self.entries.iter().any(|e| entry_name(e) == top)
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
            Some(t) if self.is_system_top(t) => PathBuf::from("/").join(rel),
            Some(_) => step_dir.join("root").join(rel),
            None => step_dir.join("root"),
        }
    }

    /// Where an input artifact for `path` is placed, and its bind target.
    /// A path inside a system directory is bind-mounted over what the host
    /// has there; a path the host lacks there cannot be created without
    /// changing the host, and is refused.
    pub fn input_place(&self, step_dir: &Path, path: &str, index: usize) -> Result<(PathBuf, Option<String>), String> {
        let rel = relative(path);
        let top = rel
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned());
        match top.as_deref() {
            Some(t) if self.is_system_top(t) => {
                if !Path::new("/").join(&rel).exists() {
                    return Err(format!(
                        "{path} is inside the read-only system directory /{t} and does not exist there; the sandbox \
                         places artifacts under /tmp, under other top-level directories, or over existing paths"
                    ));
                }
                Ok((step_dir.join("mounts").join(index.to_string()), Some(path.to_string())))
            }
            _ => Ok((self.host_path(step_dir, path), None)),
        }
    }

    /// Creates the private top-level directory `path` lives in.
    pub fn prepare(&self, step_dir: &Path, path: &str) -> std::io::Result<()> {
        let rel = relative(path);
        if let Some(Component::Normal(top)) = rel.components().next() {
            let top = top.to_string_lossy();
            if top != "tmp" && !self.is_system_top(&top) {
                std::fs::create_dir_all(step_dir.join("root").join(top.as_ref()))?;
            }
        }
        Ok(())
    }

    /// The command running `argv` for `step` in the sandbox, with `path` as
    /// its `PATH` and `mounts` (host, path, read-only) bound last.
    pub fn command(
        &self,
        step: &StepProcess,
        mounts: &[(PathBuf, String, bool)],
        argv: &[String],
        path: &str,
    ) -> tokio::process::Command {
        let mut c = match &self.prlimit {
            Some(prlimit) => {
                let mut c = tokio::process::Command::new(prlimit);
                c.arg(format!("--nofile={MAX_FILES}")).arg("--core=0");
                if let Some(bytes) = step.main.memory_limit {
                    c.arg(format!("--as={bytes}"));
                }
                c.arg("--").arg(&self.bwrap);
                c
            }
            None => tokio::process::Command::new(&self.bwrap),
        };
        // Namespaces: when the step's process ends, whatever it left running
        // goes with it (PID); no network unless asked for.
        c.args([
            "--unshare-all",
            "--unshare-user",
            "--die-with-parent",
            "--new-session",
            "--cap-drop",
            "ALL",
        ]);
        if step.host_network {
            c.arg("--share-net");
        }
        let uid = step.main.run_as_user.unwrap_or(NOBODY);
        let gid = step.main.run_as_group.unwrap_or(if uid == 0 { 0 } else { NOBODY });
        c.args(["--uid", &uid.to_string(), "--gid", &gid.to_string()]);
        for e in &self.entries {
            match e {
                RootEntry::Dir(name) => {
                    let p = format!("/{name}");
                    c.args(["--ro-bind", &p, &p]);
                }
                RootEntry::Symlink(target, name) => {
                    c.args(["--symlink", target, &format!("/{name}")]);
                }
            }
        }
        for (p, is_dir) in &self.hidden {
            if *is_dir {
                c.arg("--tmpfs").arg(p).arg("--remount-ro").arg(p);
            } else {
                c.arg("--ro-bind").arg("/dev/null").arg(p);
            }
        }
        c.args(["--dev", "/dev", "--proc", "/proc"]);
        c.arg("--bind").arg(step.step_dir.join("tmp")).arg("/tmp");
        if let Ok(dirs) = std::fs::read_dir(step.step_dir.join("root")) {
            for d in dirs.flatten() {
                let name = d.file_name().to_string_lossy().into_owned();
                c.arg("--bind").arg(d.path()).arg(format!("/{name}"));
            }
        }
        for (host, path, ro) in mounts {
            c.arg(if *ro { "--ro-bind" } else { "--bind" }).arg(host).arg(path);
        }
        c.args(["--remount-ro", "/"]);
        c.args(["--chdir", step.main.working_dir.as_deref().unwrap_or("/tmp")]);
        c.args(["--clearenv", "--setenv", "PATH", path, "--setenv", "HOME", "/tmp"]);
        for (k, v) in &step.main.env {
            if k != "PATH" {
                c.args(["--setenv", k, v]);
            }
        }
        c.arg("--");
        c.args(argv);
        c
    }
}

/// Collects the files and folders under `dir` that other users may not read
/// (these stay hidden from steps), not descending into hidden folders.
fn private_entries(dir: &Path, depth: usize, out: &mut Vec<(PathBuf, bool)>) {
    use std::os::unix::fs::PermissionsExt;
    let Ok(list) = std::fs::read_dir(dir) else {
        return;
    };
    for e in list.flatten() {
        let Ok(meta) = std::fs::symlink_metadata(e.path()) else {
            continue;
        };
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = meta.permissions().mode();
        let readable = if meta.is_dir() {
            mode & 0o005 == 0o005
        } else {
            mode & 0o004 != 0
        };
        if !readable {
            out.push((e.path(), meta.is_dir()));
        } else if meta.is_dir() && depth < 8 {
            private_entries(&e.path(), depth + 1, out);
        }
    }
}

fn entry_name(e: &RootEntry) -> &str {
    match e {
        RootEntry::Dir(n) => n,
        RootEntry::Symlink(_, n) => n,
    }
}

/// Runs steps in bubblewrap sandboxes.
pub struct SandboxBackend {
    sandbox: Sandbox,
    extra_path: Vec<PathBuf>,
    secrets: Secrets,
    allow_host_path: bool,
}

impl SandboxBackend {
    /// The sandbox executor; `extra_path` directories are mounted read-only
    /// under `/argo/path/N` and put in front of every step's `PATH`.
    pub fn new(sandbox: Sandbox, settings: &ExecutorSettings) -> SandboxBackend {
        SandboxBackend {
            sandbox,
            extra_path: settings.extra_path.clone(),
            secrets: settings.secrets.clone(),
            allow_host_path: settings.allow_host_path,
        }
    }

    /// Whether the sandbox shows the host's `path` (it is in a system directory).
    fn sees_host(&self, path: &str) -> bool {
        let rel = relative(path);
        rel.components()
            .next()
            .is_some_and(|c| self.sandbox.is_system_top(&c.as_os_str().to_string_lossy()))
    }

    /// The bind mounts of the main container's volumes: (host, path, read-only).
    fn volume_mounts(&self, step: &StepProcess) -> Result<Vec<(PathBuf, String, bool)>, String> {
        let mut out = Vec::new();
        for m in &step.main.volume_mounts {
            let Some(v) = step.volumes.iter().find(|v| v.name == m.name) else {
                return Err(format!(
                    "volume mount '{}': the template declares no such volume",
                    m.name
                ));
            };
            let secret_dir = |name: &str, what: &str| -> Result<PathBuf, String> {
                let dir = self.secrets.dir().ok_or_else(|| {
                    format!("{what} volume '{name}' needs a secrets directory (--secrets-dir DIR, with DIR/{name}/KEY)")
                })?;
                let p = dir.join(name);
                if p.is_dir() {
                    Ok(p)
                } else {
                    Err(format!("{what} '{name}' not found: {} does not exist", p.display()))
                }
            };
            let (host, ro) = if v.empty_dir.is_some() {
                let dir = step.step_dir.join("volumes").join(&v.name);
                std::fs::create_dir_all(&dir).map_err(|e| format!("volume '{}': {e}", v.name))?;
                (dir, false)
            } else if let Some(s) = &v.secret {
                (secret_dir(s.secret_name.as_deref().unwrap_or(""), "secret")?, true)
            } else if let Some(c) = &v.config_map {
                (secret_dir(&c.name, "configMap")?, true)
            } else if let Some(h) = &v.host_path {
                if !self.allow_host_path {
                    return Err(format!(
                        "volume '{}' is a hostPath ({}): host folders are only mounted with --allow-host-path",
                        v.name, h.path
                    ));
                }
                (PathBuf::from(&h.path), false)
            } else {
                return Err(format!(
                    "volume '{}': the sandbox mounts emptyDir, secret, configMap and hostPath volumes",
                    v.name
                ));
            };
            let host = match m.sub_path.as_deref().filter(|s| !s.is_empty()) {
                Some(sub) => host.join(relative(sub)),
                None => host,
            };
            out.push((host, m.mount_path.clone(), ro || m.read_only.unwrap_or(false)));
        }
        Ok(out)
    }
}

#[async_trait::async_trait]
impl Backend for SandboxBackend {
    fn kind(&self) -> ExecutorKind {
        ExecutorKind::Sandbox
    }

    fn describe(&self) -> String {
        "steps run in the bubblewrap sandbox (read-only system, private /tmp, no network, uid 65534); `image` is \
         not used: install podman or docker to run steps in their images"
            .to_string()
    }

    fn host_path(&self, step_dir: &Path, path: &str) -> PathBuf {
        self.sandbox.host_path(step_dir, path)
    }

    fn input_place(&self, step_dir: &Path, path: &str, index: usize) -> Result<(PathBuf, Option<String>), String> {
        self.sandbox.input_place(step_dir, path, index)
    }

    fn prepare_paths(&self, step_dir: &Path, paths: &[String]) -> std::io::Result<()> {
        for p in paths {
            self.sandbox.prepare(step_dir, p)?;
        }
        Ok(())
    }

    async fn run(&self, step: StepProcess, logs: LogSink, cancel: CancellationToken) -> StepOutcome {
        if let Some(e) = needs_containers(&step) {
            return StepOutcome::not_started(e);
        }
        let volumes = match self.volume_mounts(&step) {
            Ok(v) => v,
            Err(e) => return StepOutcome::not_started(e),
        };
        let mut argv = step.main.argv();
        if argv.is_empty() {
            return StepOutcome::not_started(no_command(step.main.image.as_deref()));
        }
        if step.main.run_as_non_root && step.main.run_as_user == Some(0) {
            return StepOutcome::not_started("runAsNonRoot is set but runAsUser is 0");
        }
        let inner_extra: Vec<String> = (0..self.extra_path.len()).map(|i| format!("/argo/path/{i}")).collect();
        let path = process::search_path(&inner_extra, &step.main.env);
        // The program is looked up where the sandbox's PATH lies on the host.
        let host_path = path
            .split(':')
            .filter_map(|dir| match dir.strip_prefix("/argo/path/") {
                Some(i) => i
                    .parse::<usize>()
                    .ok()
                    .and_then(|i| self.extra_path.get(i))
                    .map(|p| p.display().to_string()),
                None => self.sees_host(dir).then(|| dir.to_string()),
            })
            .collect::<Vec<_>>()
            .join(":");
        let visible = !argv[0].contains('/') || self.sees_host(&argv[0]);
        if !visible || !process::found(&argv[0], &host_path) {
            return StepOutcome::not_started(not_found_message(&argv[0], step.main.image.as_deref()));
        }
        if let Err(e) = std::fs::create_dir_all(step.step_dir.join("tmp")) {
            return StepOutcome::not_started(format!("cannot create the step directory: {e}"));
        }
        if let Some(wd) = &step.main.working_dir {
            // A working directory in the step's private areas is created, as a container runtime does.
            let host = self.sandbox.host_path(&step.step_dir, wd);
            if host.starts_with(&step.step_dir) {
                let _ = std::fs::create_dir_all(&host);
            }
        }
        // Inputs are the step's to change; its PATH folders and script are not.
        let mut binds: Vec<(PathBuf, String, bool)> =
            step.mounts.iter().map(|(h, p)| (h.clone(), p.clone(), false)).collect();
        for (i, dir) in self.extra_path.iter().enumerate() {
            binds.push((dir.clone(), format!("/argo/path/{i}"), true));
        }
        if let Some(source) = &step.script {
            let file = step.step_dir.join("script");
            if let Err(e) = std::fs::write(&file, source) {
                return StepOutcome::not_started(format!("cannot write the script: {e}"));
            }
            binds.push((file, "/argo/staging/script".to_string(), true));
            argv.insert(1, "/argo/staging/script".to_string());
        }
        binds.extend(volumes);
        let command = self.sandbox.command(&step, &binds, &argv, &path);
        process::run(
            command,
            &argv[0],
            step.main.image.as_deref(),
            step.timeout,
            logs,
            cancel,
        )
        .await
    }
}
