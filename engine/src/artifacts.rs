//! Artifacts: the local artifact repository under the state dir (output
//! artifacts saved as tar+gzip by default, or as they are with `archive:
//! none`), and the fetching of input artifacts (`from` the repository,
//! `raw`, `http` and `git`) to the place a step sees them.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use argon_crds::secret::Secrets;
use argon_crds::workflow::{ArchiveStrategy, GitArtifact, HttpArtifact};
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

/// The local artifact repository: keys are paths under its root.
#[derive(Clone, Debug)]
pub struct Repository {
    root: PathBuf,
}

/// The suffix of keys holding tar+gzip archives.
const TGZ: &str = ".tgz";

impl Repository {
    pub fn new(root: PathBuf) -> Repository {
        Repository { root }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// Saves the file or directory at `src` under `key` (without suffix);
    /// returns the stored key.
    pub fn save(&self, key: &str, src: &Path, archive: Option<&ArchiveStrategy>) -> Result<String, String> {
        let meta = std::fs::metadata(src).map_err(|e| format!("{}: {e}", src.display()))?;
        let raw = archive.is_some_and(|a| a.none.is_some());
        if raw {
            let dest = self.path(key);
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
            }
            copy_tree(src, &dest).map_err(|e| format!("cannot save {}: {e}", src.display()))?;
            return Ok(key.to_string());
        }
        let level = archive
            .and_then(|a| a.tar.as_ref())
            .and_then(|t| t.compression_level)
            .map(|l| Compression::new(l.clamp(0, 9) as u32))
            .unwrap_or_default();
        let stored = format!("{key}{TGZ}");
        let dest = self.path(&stored);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        let file = File::create(&dest).map_err(|e| format!("{}: {e}", dest.display()))?;
        let mut tar = tar::Builder::new(GzEncoder::new(BufWriter::new(file), level));
        let name = src
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "artifact".to_string());
        let res = if meta.is_dir() {
            tar.append_dir_all(&name, src)
        } else {
            tar.append_path_with_name(src, &name)
        };
        res.map_err(|e| format!("cannot archive {}: {e}", src.display()))?;
        let gz = tar.into_inner().map_err(|e| e.to_string())?;
        let mut w = gz.finish().map_err(|e| e.to_string())?;
        w.flush().map_err(|e| e.to_string())?;
        Ok(stored)
    }

    /// Places the artifact stored under `key` at `dest` (a file artifact as
    /// the file `dest`, a directory's content under `dest`).
    pub fn load(&self, key: &str, dest: &Path) -> Result<(), String> {
        let src = self.path(key);
        if !src.exists() {
            return Err(format!("artifact '{key}' is not in the artifact repository"));
        }
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
        }
        if !key.ends_with(TGZ) {
            return copy_tree(&src, dest).map_err(|e| format!("cannot place artifact at {}: {e}", dest.display()));
        }
        untar(&src, dest)
    }
}

/// Extracts a tar.gz holding one top-level entry to `dest`: a single file
/// becomes `dest`; a directory's content goes under `dest`.
fn untar(archive: &Path, dest: &Path) -> Result<(), String> {
    let scratch = dest.with_file_name(format!(
        ".{}.unpack",
        dest.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
    ));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
    let file = File::open(archive).map_err(|e| e.to_string())?;
    tar::Archive::new(GzDecoder::new(file))
        .unpack(&scratch)
        .map_err(|e| format!("cannot unpack artifact: {e}"))?;
    let entries: Vec<PathBuf> = std::fs::read_dir(&scratch)
        .map_err(|e| e.to_string())?
        .flatten()
        .map(|e| e.path())
        .collect();
    let res = match entries.as_slice() {
        [one] => move_into(one, dest),
        _ => move_into(&scratch, dest),
    };
    let _ = std::fs::remove_dir_all(&scratch);
    res.map_err(|e| format!("cannot place artifact at {}: {e}", dest.display()))
}

fn move_into(src: &Path, dest: &Path) -> std::io::Result<()> {
    if dest.is_dir() && src.is_dir() {
        return copy_tree(src, dest);
    }
    if std::fs::rename(src, dest).is_ok() {
        return Ok(());
    }
    copy_tree(src, dest)
}

/// Places the part `sub_path` of an artifact fetched to `full` at `dest`
/// (an input artifact's `subPath`), then removes `full`.
pub fn take_sub_path(full: &Path, sub_path: &str, dest: &Path) -> Result<(), String> {
    let rel = Path::new(sub_path.trim_start_matches('/'));
    if rel.components().any(|c| !matches!(c, std::path::Component::Normal(_))) {
        return Err(format!("subPath '{sub_path}' must be a path inside the artifact"));
    }
    let src = full.join(rel);
    let res = if !src.exists() {
        Err(format!("subPath '{sub_path}' is not in the artifact"))
    } else {
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        move_into(&src, dest).map_err(|e| format!("cannot place artifact at {}: {e}", dest.display()))
    };
    let _ = std::fs::remove_dir_all(full);
    let _ = std::fs::remove_file(full);
    res
}

/// Copies a file, or a directory recursively.
pub fn copy_tree(src: &Path, dest: &Path) -> std::io::Result<()> {
    let meta = std::fs::metadata(src)?;
    if meta.is_dir() {
        std::fs::create_dir_all(dest)?;
        for e in std::fs::read_dir(src)? {
            let e = e?;
            copy_tree(&e.path(), &dest.join(e.file_name()))?;
        }
        Ok(())
    } else {
        std::fs::copy(src, dest).map(|_| ())
    }
}

/// Writes a `raw` artifact.
pub fn fetch_raw(data: &str, dest: &Path) -> Result<(), String> {
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    std::fs::write(dest, data).map_err(|e| format!("cannot write {}: {e}", dest.display()))
}

/// Downloads an `http` artifact.
pub async fn fetch_http(
    client: &reqwest::Client,
    art: &HttpArtifact,
    secrets: &Secrets,
    dest: &Path,
) -> Result<(), String> {
    let mut req = client.get(&art.url);
    for h in &art.headers {
        req = req.header(&h.name, &h.value);
    }
    if let Some(basic) = art.auth.as_ref().and_then(|a| a.basic_auth.as_ref()) {
        let user = match &basic.username_secret {
            Some(s) => secrets.require(s).map_err(|e| e.to_string())?,
            None => String::new(),
        };
        let pass = match &basic.password_secret {
            Some(s) => Some(secrets.require(s).map_err(|e| e.to_string())?),
            None => None,
        };
        req = req.basic_auth(user, pass);
    }
    let resp = req
        .send()
        .await
        .map_err(|e| format!("cannot download {}: {e}", art.url))?;
    if !resp.status().is_success() {
        return Err(format!("cannot download {}: HTTP {}", art.url, resp.status()));
    }
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| format!("cannot download {}: {e}", art.url))?;
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    std::fs::write(dest, &bytes).map_err(|e| format!("cannot write {}: {e}", dest.display()))
}

/// Clones a `git` artifact at its revision.
pub async fn fetch_git(art: &GitArtifact, secrets: &Secrets, dest: &Path, scratch: &Path) -> Result<(), String> {
    let mut url = art.repo.clone();
    let mut env: Vec<(String, String)> = vec![("GIT_TERMINAL_PROMPT".into(), "0".into())];
    if let Some(user_sel) = &art.username_secret
        && let Some(pass_sel) = &art.password_secret
        && url.starts_with("http")
    {
        let user = secrets.require(user_sel).map_err(|e| e.to_string())?;
        let pass = secrets.require(pass_sel).map_err(|e| e.to_string())?;
        if let Some((scheme, rest)) = url.split_once("://") {
            url = format!("{scheme}://{user}:{pass}@{rest}");
        }
    }
    if let Some(key_sel) = &art.ssh_private_key_secret {
        let key = secrets.require(key_sel).map_err(|e| e.to_string())?;
        std::fs::create_dir_all(scratch).map_err(|e| e.to_string())?;
        let key_file = scratch.join("git-ssh-key");
        std::fs::write(&key_file, format!("{}\n", key.trim_end())).map_err(|e| e.to_string())?;
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600));
        let mut ssh = format!("ssh -i {} -o IdentitiesOnly=yes", key_file.display());
        if art.insecure_ignore_host_key.unwrap_or(false) {
            ssh.push_str(" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null");
        }
        env.push(("GIT_SSH_COMMAND".into(), ssh));
    }
    if art.insecure_skip_tls.unwrap_or(false) {
        env.push(("GIT_SSL_NO_VERIFY".into(), "true".into()));
    }
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    let _ = std::fs::remove_dir_all(dest);
    let mut clone = vec!["clone".to_string(), "--quiet".to_string()];
    if let Some(depth) = art.depth.filter(|d| *d > 0) {
        clone.push(format!("--depth={depth}"));
    }
    if let Some(branch) = &art.branch {
        clone.push(format!("--branch={branch}"));
    }
    if art.single_branch.unwrap_or(false) {
        clone.push("--single-branch".into());
    }
    if !art.disable_submodules.unwrap_or(false) {
        clone.push("--recurse-submodules".into());
    }
    clone.push(url);
    clone.push(dest.display().to_string());
    git(&clone, &env, None)
        .await
        .map_err(|e| format!("git clone {}: {e}", art.repo))?;
    for refspec in &art.fetch {
        git(
            &["fetch".into(), "--quiet".into(), "origin".into(), refspec.clone()],
            &env,
            Some(dest),
        )
        .await
        .map_err(|e| format!("git fetch {refspec}: {e}"))?;
    }
    if let Some(rev) = art.revision.as_deref().filter(|r| !r.is_empty()) {
        git(
            &["checkout".into(), "--quiet".into(), rev.to_string()],
            &env,
            Some(dest),
        )
        .await
        .map_err(|e| format!("git checkout {rev} in {}: {e}", art.repo))?;
    }
    Ok(())
}

async fn git(args: &[String], env: &[(String, String)], dir: Option<&Path>) -> Result<(), String> {
    let mut c = tokio::process::Command::new("git");
    c.args(args).stdin(std::process::Stdio::null());
    for (k, v) in env {
        c.env(k, v);
    }
    if let Some(d) = dir {
        c.current_dir(d);
    }
    let out = c.output().await.map_err(|e| format!("cannot run git: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        let stderr = String::from_utf8_lossy(&out.stderr);
        Err(stderr.trim().lines().last().unwrap_or("failed").to_string())
    }
}

/// Sets the mode of a placed artifact (`mode: 0755`).
pub fn set_mode(path: &Path, mode: i32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode as u32))
        .map_err(|e| format!("cannot set mode of {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon_crds::workflow::{NoneStrategy, TarStrategy};

    #[test]
    fn files_and_directories_round_trip_archived_or_not() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::new(dir.path().join("repo"));
        let file = dir.path().join("hello.txt");
        std::fs::write(&file, "hello").unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("sub")).unwrap();
        std::fs::write(tree.join("a"), "A").unwrap();
        std::fs::write(tree.join("sub/b"), "B").unwrap();

        let k = repo.save("wf/n/file", &file, None).unwrap();
        assert!(k.ends_with(".tgz"));
        repo.load(&k, &dir.path().join("out/message")).unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("out/message")).unwrap(),
            "hello"
        );

        let strategy = ArchiveStrategy {
            tar: Some(TarStrategy {
                compression_level: Some(1),
            }),
            ..Default::default()
        };
        let k = repo.save("wf/n/tree", &tree, Some(&strategy)).unwrap();
        repo.load(&k, &dir.path().join("out/tree")).unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("out/tree/sub/b")).unwrap(), "B");

        let none = ArchiveStrategy {
            none: Some(NoneStrategy {}),
            ..Default::default()
        };
        let k = repo.save("wf/n/raw", &tree, Some(&none)).unwrap();
        assert!(!k.ends_with(".tgz"));
        repo.load(&k, &dir.path().join("out/raw")).unwrap();
        assert_eq!(std::fs::read_to_string(dir.path().join("out/raw/a")).unwrap(), "A");
    }
}
