//! Packing an output artifact into the file that is stored (tar+gzip by
//! default, zip, or the file as it is) and unpacking a fetched object to
//! the place a step sees it. Everything goes through files on disk, so an
//! artifact of any size is packed and unpacked in bounded memory.

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Seek, Write};
use std::path::{Path, PathBuf};

use argon_crds::workflow::ArchiveStrategy;
use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

/// How an output artifact is packed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packing {
    /// A tar archive compressed with gzip at this level (Argo's default).
    TarGz(u32),
    /// A zip archive (outputs only, as Argo allows).
    Zip,
    /// The file as it is; a directory as one object per file under its key.
    None,
}

impl Packing {
    /// The packing an artifact's `archive` asks for.
    pub fn of(archive: Option<&ArchiveStrategy>) -> Packing {
        match archive {
            Some(a) if a.none.is_some() => Packing::None,
            Some(a) if a.zip.is_some() => Packing::Zip,
            Some(a) => Packing::TarGz(
                a.tar
                    .as_ref()
                    .and_then(|t| t.compression_level)
                    .map(|l| l.clamp(0, 9) as u32)
                    .unwrap_or(Compression::default().level()),
            ),
            None => Packing::TarGz(Compression::default().level()),
        }
    }

    /// The suffix of the file name Argo gives an artifact packed this way.
    pub fn suffix(self) -> &'static str {
        match self {
            Packing::TarGz(_) => ".tgz",
            Packing::Zip => ".zip",
            Packing::None => "",
        }
    }
}

/// The name the packed artifact's single top-level entry gets.
fn entry_name(src: &Path) -> String {
    src.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "artifact".to_string())
}

/// Packs the file or directory `src` into the file `dest` (tar+gzip or zip).
pub fn pack(src: &Path, packing: Packing, dest: &Path) -> Result<(), String> {
    let meta = std::fs::metadata(src).map_err(|e| format!("{}: {e}", src.display()))?;
    let file = File::create(dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    let name = entry_name(src);
    match packing {
        Packing::TarGz(level) => {
            let mut tar = tar::Builder::new(GzEncoder::new(BufWriter::new(file), Compression::new(level)));
            let res = if meta.is_dir() {
                tar.append_dir_all(&name, src)
            } else {
                tar.append_path_with_name(src, &name)
            };
            res.map_err(|e| format!("cannot archive {}: {e}", src.display()))?;
            let gz = tar.into_inner().map_err(|e| e.to_string())?;
            let mut w = gz.finish().map_err(|e| e.to_string())?;
            w.flush().map_err(|e| e.to_string())
        }
        Packing::Zip => zip_tree(src, &name, meta.is_dir(), BufWriter::new(file))
            .map_err(|e| format!("cannot zip {}: {e}", src.display())),
        Packing::None => Err("an artifact stored as it is is not packed".into()),
    }
}

fn zip_tree<W: Write + Seek>(src: &Path, name: &str, is_dir: bool, out: W) -> zip::result::ZipResult<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut zip = zip::ZipWriter::new(out);
    let options = |mode: u32| {
        zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(mode)
            .large_file(true)
    };
    let mut todo = vec![(src.to_path_buf(), name.to_string(), is_dir)];
    while let Some((path, rel, dir)) = todo.pop() {
        let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
        if dir {
            zip.add_directory(format!("{rel}/"), options(mode))?;
            let mut children: Vec<_> = std::fs::read_dir(&path)?.flatten().collect();
            children.sort_by_key(|e| e.file_name());
            for e in children.into_iter().rev() {
                let child_dir = e.file_type()?.is_dir();
                todo.push((
                    e.path(),
                    format!("{rel}/{}", e.file_name().to_string_lossy()),
                    child_dir,
                ));
            }
        } else {
            zip.start_file(rel, options(mode))?;
            std::io::copy(&mut BufReader::new(File::open(&path)?), &mut zip)?;
        }
    }
    zip.finish()?.flush()?;
    Ok(())
}

/// What a fetched object holds, from its first bytes.
#[derive(Debug, PartialEq, Eq)]
enum Content {
    TarGz,
    Zip,
    Plain,
}

fn sniff(path: &Path) -> std::io::Result<Content> {
    let mut head = [0u8; 4];
    let mut f = File::open(path)?;
    let n = f.read(&mut head)?;
    if n >= 2 && head[..2] == [0x1f, 0x8b] {
        // gzip: a tarball only when what it holds has a tar header.
        f.rewind()?;
        let mut block = vec![0u8; 512];
        let mut gz = GzDecoder::new(BufReader::new(f));
        if gz.read_exact(&mut block).is_ok() && &block[257..262] == b"ustar" {
            return Ok(Content::TarGz);
        }
        return Ok(Content::Plain);
    }
    if n == 4 && head == *b"PK\x03\x04" {
        return Ok(Content::Zip);
    }
    Ok(Content::Plain)
}

/// Places the fetched object `file` at `dest`: a tarball or zip holding one
/// file becomes the file `dest`, one holding a directory has its content
/// put under `dest`; anything else is moved to `dest` as it is (as Argo's
/// executor does).
pub fn unpack(file: &Path, dest: &Path) -> Result<(), String> {
    if let Some(parent) = dest.parent() {
        std::fs::create_dir_all(parent).map_err(|e| e.to_string())?;
    }
    let content = sniff(file).map_err(|e| format!("cannot read the fetched artifact: {e}"))?;
    if content == Content::Plain {
        return move_into(file, dest).map_err(|e| format!("cannot place artifact at {}: {e}", dest.display()));
    }
    let scratch = dest.with_file_name(format!(
        ".{}.unpack",
        dest.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()
    ));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).map_err(|e| e.to_string())?;
    let opened = File::open(file).map_err(|e| e.to_string())?;
    let res = match content {
        Content::TarGz => tar::Archive::new(GzDecoder::new(BufReader::new(opened)))
            .unpack(&scratch)
            .map_err(|e| format!("cannot unpack artifact: {e}")),
        _ => zip::ZipArchive::new(BufReader::new(opened))
            .and_then(|mut z| z.extract(&scratch))
            .map_err(|e| format!("cannot unzip artifact: {e}")),
    };
    if let Err(e) = res {
        let _ = std::fs::remove_dir_all(&scratch);
        return Err(e);
    }
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

fn move_into(src: &Path, dest: &Path) -> std::io::Result<()> {
    if dest.is_dir() && src.is_dir() {
        return super::copy_tree(src, dest);
    }
    if std::fs::rename(src, dest).is_ok() {
        return Ok(());
    }
    super::copy_tree(src, dest)
}

/// The files under directory `dir`, as (path, path relative to `dir` with
/// `/` separators), in name order.
pub fn files_under(dir: &Path) -> std::io::Result<Vec<(PathBuf, String)>> {
    let mut out = Vec::new();
    let mut todo = vec![(dir.to_path_buf(), String::new())];
    while let Some((p, rel)) = todo.pop() {
        let mut children: Vec<_> = std::fs::read_dir(&p)?.flatten().collect();
        children.sort_by_key(|e| e.file_name());
        for e in children {
            let name = e.file_name().to_string_lossy().into_owned();
            let child_rel = if rel.is_empty() { name } else { format!("{rel}/{name}") };
            if e.file_type()?.is_dir() {
                todo.push((e.path(), child_rel));
            } else {
                out.push((e.path(), child_rel));
            }
        }
    }
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_directories_round_trip_through_tar_gzip_and_zip() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hello.txt");
        std::fs::write(&file, "hello").unwrap();
        let tree = dir.path().join("tree");
        std::fs::create_dir_all(tree.join("sub")).unwrap();
        std::fs::write(tree.join("a"), "A").unwrap();
        std::fs::write(tree.join("sub/b"), "B").unwrap();
        for packing in [Packing::TarGz(1), Packing::Zip] {
            let packed = dir.path().join(format!("file{}", packing.suffix()));
            pack(&file, packing, &packed).unwrap();
            let out = dir.path().join(format!("out{}/message", packing.suffix()));
            unpack(&packed, &out).unwrap();
            assert_eq!(std::fs::read_to_string(&out).unwrap(), "hello");

            let packed = dir.path().join(format!("tree{}", packing.suffix()));
            pack(&tree, packing, &packed).unwrap();
            let out = dir.path().join(format!("out{}/tree", packing.suffix()));
            unpack(&packed, &out).unwrap();
            assert_eq!(std::fs::read_to_string(out.join("sub/b")).unwrap(), "B");
            assert_eq!(std::fs::read_to_string(out.join("a")).unwrap(), "A");
        }
        // A plain gzip file (not a tarball) is placed as it is.
        let gz = dir.path().join("plain.gz");
        let mut enc = GzEncoder::new(File::create(&gz).unwrap(), Compression::default());
        enc.write_all(b"not a tar").unwrap();
        enc.finish().unwrap();
        let out = dir.path().join("out/plain.gz");
        unpack(&gz, &out).unwrap();
        assert_eq!(sniff(&out).unwrap(), Content::Plain);
        assert_eq!(
            files_under(&tree).unwrap().into_iter().map(|f| f.1).collect::<Vec<_>>(),
            ["a", "sub/b"]
        );
    }
}
