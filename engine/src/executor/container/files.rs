//! What crosses a container's boundary as files: the step's inputs (input
//! artifacts, the script) packed as a tar and copied in before the main
//! container starts, and the paths it hands back copied out after it ends.

use std::path::{Path, PathBuf};

use bollard::errors::Error as DockerError;
use bollard::query_parameters::{DownloadFromContainerOptionsBuilder, UploadToContainerOptionsBuilder};
use futures::StreamExt;

use super::{ContainerBackend, OUTPUT_LIMIT, SCRIPT_PATH, runtime_message};
use crate::executor::{StepProcess, relative};

impl ContainerBackend {
    /// Copies the step's inputs (and script) into the created container.
    pub(super) async fn upload_inputs(&self, name: &str, step: &StepProcess) -> Result<(), String> {
        if step.mounts.is_empty() && step.script.is_none() {
            return Ok(());
        }
        let uid = step.main.run_as_user.unwrap_or(0).max(0) as u64;
        let gid = step.main.run_as_group.unwrap_or(uid as i64).max(0) as u64;
        let mounts = step.mounts.clone();
        let script = step.script.clone();
        let tar = tokio::task::spawn_blocking(move || input_tar(&mounts, script.as_deref(), uid, gid))
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("cannot pack the step's inputs: {e}"))?;
        let options = UploadToContainerOptionsBuilder::default().path("/").build();
        self.docker
            .upload_to_container(name, Some(options), bollard::body_full(tar.into()))
            .await
            .map_err(|e| format!("cannot copy the inputs into the container: {}", runtime_message(&e)))
    }

    /// Copies the paths the step hands back out of the finished container,
    /// under the step's `fs` folder.
    pub(super) async fn download_outputs(&self, name: &str, step: &StepProcess) -> Result<(), String> {
        for path in &step.outputs {
            let rel = relative(path);
            let dest = step.step_dir.join("fs").join(rel.parent().unwrap_or(Path::new("")));
            let options = DownloadFromContainerOptionsBuilder::default().path(path).build();
            let mut stream = self.docker.download_from_container(name, Some(options));
            let mut bytes = Vec::new();
            let mut missing = false;
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(c) => {
                        bytes.extend_from_slice(&c);
                        if bytes.len() > OUTPUT_LIMIT {
                            return Err(format!("output {path} is larger than {} MiB", OUTPUT_LIMIT >> 20));
                        }
                    }
                    Err(DockerError::DockerResponseServerError { status_code: 404, .. }) => {
                        missing = true;
                        break;
                    }
                    Err(e) => {
                        return Err(format!(
                            "cannot copy {path} out of the container: {}",
                            runtime_message(&e)
                        ));
                    }
                }
            }
            if missing || bytes.is_empty() {
                continue;
            }
            tokio::task::spawn_blocking(move || {
                std::fs::create_dir_all(&dest)?;
                let mut archive = tar::Archive::new(std::io::Cursor::new(bytes));
                archive.set_preserve_permissions(false);
                archive.set_overwrite(true);
                archive.unpack(&dest)
            })
            .await
            .map_err(|e| e.to_string())?
            .map_err(|e| format!("cannot unpack {path}: {e}"))?;
        }
        Ok(())
    }
}

/// A tar of the inputs at their paths (relative to `/`), owned by the step's user.
fn input_tar(mounts: &[(PathBuf, String)], script: Option<&str>, uid: u64, gid: u64) -> std::io::Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    let header = |size: u64, mode: u32, kind: tar::EntryType| {
        let mut h = tar::Header::new_gnu();
        h.set_size(size);
        h.set_mode(mode);
        h.set_uid(uid);
        h.set_gid(gid);
        h.set_entry_type(kind);
        h.set_mtime(0);
        h
    };
    for (host, path) in mounts {
        let rel = relative(path);
        if host.is_dir() {
            for entry in walk(host)? {
                let inner = entry.strip_prefix(host).unwrap_or(&entry);
                let name = rel.join(inner);
                let meta = std::fs::symlink_metadata(&entry)?;
                if meta.is_dir() {
                    let mut h = header(0, 0o755, tar::EntryType::Directory);
                    b.append_data(&mut h, &name, std::io::empty())?;
                } else if meta.is_file() {
                    use std::os::unix::fs::PermissionsExt;
                    let mut h = header(meta.len(), meta.permissions().mode() & 0o777, tar::EntryType::Regular);
                    b.append_data(&mut h, &name, std::fs::File::open(&entry)?)?;
                }
            }
        } else {
            use std::os::unix::fs::PermissionsExt;
            let meta = std::fs::metadata(host)?;
            let mut h = header(meta.len(), meta.permissions().mode() & 0o777, tar::EntryType::Regular);
            b.append_data(&mut h, &rel, std::fs::File::open(host)?)?;
        }
    }
    if let Some(source) = script {
        let mut h = header(source.len() as u64, 0o755, tar::EntryType::Regular);
        b.append_data(&mut h, relative(SCRIPT_PATH), source.as_bytes())?;
    }
    b.into_inner()
}

/// `dir` and everything under it, parents first.
fn walk(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = vec![dir.to_path_buf()];
    let mut i = 0;
    while i < out.len() {
        let p = out[i].clone();
        if std::fs::symlink_metadata(&p)?.is_dir() {
            let mut children: Vec<PathBuf> = std::fs::read_dir(&p)?.flatten().map(|e| e.path()).collect();
            children.sort();
            out.extend(children);
        }
        i += 1;
    }
    Ok(out)
}
