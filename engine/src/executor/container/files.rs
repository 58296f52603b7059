//! What crosses a container's boundary as files: the step's inputs (input
//! artifacts, the script) packed as a tar and copied in before the main
//! container starts, and the paths it hands back copied out after it ends;
//! both tars go through files on disk, so memory stays bounded.

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
        let entries: Vec<(PathBuf, PathBuf)> = step
            .mounts
            .iter()
            .map(|(host, path)| (host.clone(), relative(path)))
            .collect();
        let script = step.script.clone().map(|s| (s, relative(SCRIPT_PATH)));
        // Packed to a file and streamed from it, so inputs of any size go
        // in with bounded memory.
        let tar_file = step.step_dir.join(".inputs.tar");
        let packed = tar_file.clone();
        tokio::task::spawn_blocking(move || {
            let out = std::io::BufWriter::new(std::fs::File::create(&packed)?);
            input_tar(&entries, script, uid, gid, out)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot pack the step's inputs: {e}"))?;
        let file = tokio::fs::File::open(&tar_file)
            .await
            .map_err(|e| format!("cannot read the step's packed inputs: {e}"))?;
        let chunks = futures::stream::unfold(file, |mut f| async move {
            use tokio::io::AsyncReadExt;
            let mut buf = vec![0u8; 1 << 20];
            match f.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    Some((Ok(bytes::Bytes::from(buf)), f))
                }
                Err(e) => Some((Err(e), f)),
            }
        });
        let options = UploadToContainerOptionsBuilder::default().path("/").build();
        let res = self
            .docker
            .upload_to_container(name, Some(options), bollard::body_try_stream(chunks))
            .await
            .map_err(|e| format!("cannot copy the inputs into the container: {}", runtime_message(&e)));
        let _ = tokio::fs::remove_file(&tar_file).await;
        res
    }

    /// Copies the paths the step hands back out of the finished container,
    /// under the step's `fs` folder. The runtime's tar goes to a file on
    /// disk first, so an output of any size is copied in bounded memory.
    pub(super) async fn download_outputs(&self, name: &str, step: &StepProcess) -> Result<(), String> {
        use tokio::io::AsyncWriteExt;
        for (i, path) in step.outputs.iter().enumerate() {
            let rel = relative(path);
            let dest = step.step_dir.join("fs").join(rel.parent().unwrap_or(Path::new("")));
            let options = DownloadFromContainerOptionsBuilder::default().path(path).build();
            let mut stream = self.docker.download_from_container(name, Some(options));
            let tar_file = step.step_dir.join(format!(".output-{i}.tar"));
            let mut file = tokio::fs::File::create(&tar_file)
                .await
                .map_err(|e| format!("cannot copy {path} out of the container: {}: {e}", tar_file.display()))?;
            let mut size = 0usize;
            let mut missing = false;
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(c) => {
                        size += c.len();
                        if size > OUTPUT_LIMIT {
                            let _ = tokio::fs::remove_file(&tar_file).await;
                            return Err(format!("output {path} is larger than {} MiB", OUTPUT_LIMIT >> 20));
                        }
                        file.write_all(&c)
                            .await
                            .map_err(|e| format!("cannot copy {path} out of the container: {e}"))?;
                    }
                    Err(DockerError::DockerResponseServerError { status_code: 404, .. }) => {
                        missing = true;
                        break;
                    }
                    Err(e) => {
                        let _ = tokio::fs::remove_file(&tar_file).await;
                        return Err(format!(
                            "cannot copy {path} out of the container: {}",
                            runtime_message(&e)
                        ));
                    }
                }
            }
            file.flush().await.map_err(|e| e.to_string())?;
            drop(file);
            if missing || size == 0 {
                let _ = tokio::fs::remove_file(&tar_file).await;
                continue;
            }
            let unpacked = tar_file.clone();
            let res = tokio::task::spawn_blocking(move || {
                std::fs::create_dir_all(&dest)?;
                let mut archive = tar::Archive::new(std::io::BufReader::new(std::fs::File::open(&unpacked)?));
                archive.set_preserve_permissions(false);
                archive.set_overwrite(true);
                archive.unpack(&dest)
            })
            .await
            .map_err(|e| e.to_string());
            let _ = tokio::fs::remove_file(&tar_file).await;
            res?.map_err(|e| format!("cannot unpack {path}: {e}"))?;
        }
        Ok(())
    }
}

/// A tar of the inputs (host file or folder, name in the tar) and the
/// script's source (source, name), owned by the step's user.
pub(in crate::executor) fn input_tar<W: std::io::Write>(
    entries: &[(PathBuf, PathBuf)],
    script: Option<(String, PathBuf)>,
    uid: u64,
    gid: u64,
    out: W,
) -> std::io::Result<()> {
    let mut b = tar::Builder::new(out);
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
    for (host, rel) in entries {
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
            b.append_data(&mut h, rel, std::fs::File::open(host)?)?;
        }
    }
    if let Some((source, name)) = script {
        let mut h = header(source.len() as u64, 0o755, tar::EntryType::Regular);
        b.append_data(&mut h, name, source.as_bytes())?;
    }
    b.into_inner()?.flush()
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
