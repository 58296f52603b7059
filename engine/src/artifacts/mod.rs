//! Artifacts: where a workflow's artifacts are stored ([`repository`]: the
//! local repository under the state dir, or an S3-compatible bucket, as
//! Argo configures it), how they are packed ([`archive`]) and moved
//! ([`store`]), and the fetching of input artifacts from the other places
//! Argo knows (`raw`, `http` and `git`).

pub mod archive;
pub mod repository;
pub mod store;

use std::path::Path;
use std::sync::RwLock;

use argon_crds::secret::Secrets;
use argon_crds::workflow::{Artifact, ArtifactLocation, GitArtifact, HttpArtifact, S3Artifact};
use k8s_openapi::api::core::v1::ConfigMap;

pub use archive::{Packing, take_sub_path};
pub use repository::{ArtifactRepository, Chosen, Repositories};
pub use store::{Bucket, Missing};

/// A stored output artifact as the API hands it out.
pub enum StoredArtifact {
    /// The object, as stored.
    Object(futures::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>),
    /// A directory stored as it is: its files, relative to it.
    Directory(Vec<String>),
}

/// Where an artifact's object is: a key in the local repository, or an S3
/// location with every field it needs.
#[derive(Clone, Debug, PartialEq)]
pub enum Place {
    /// A key under the state dir's `artifacts` folder.
    Local(String),
    /// An object in an S3-compatible bucket.
    S3(Box<S3Artifact>),
}

impl Place {
    /// The key of the object.
    pub fn key(&self) -> &str {
        match self {
            Place::Local(k) => k,
            Place::S3(s) => s.key.as_deref().unwrap_or(""),
        }
    }

    /// What a node records as the artifact's location: `s3` with the key
    /// alone for the local repository (the shape it always had), else the
    /// whole S3 location.
    pub fn recorded(&self) -> S3Artifact {
        match self {
            Place::Local(k) => S3Artifact {
                key: Some(k.clone()),
                ..Default::default()
            },
            Place::S3(s) => (**s).clone(),
        }
    }

    /// The place of file `rel` of a directory stored as it is at this place.
    pub fn child(&self, rel: &str) -> Place {
        let key = format!("{}/{rel}", self.key().trim_end_matches('/'));
        match self {
            Place::Local(_) => Place::Local(key),
            Place::S3(s) => Place::S3(Box::new(S3Artifact {
                key: Some(key),
                ..(**s).clone()
            })),
        }
    }

    /// A human-readable location: `s3://BUCKET/KEY` or `local:KEY`.
    pub fn url(&self) -> String {
        match self {
            Place::Local(k) => format!("local:{k}"),
            Place::S3(s) => format!(
                "s3://{}/{}",
                s.bucket.as_deref().unwrap_or(""),
                s.key.as_deref().unwrap_or("")
            ),
        }
    }
}

/// Fills the fields an S3 location leaves out from the repository's (a
/// key-only artifact takes the repository's bucket, endpoint and credentials).
fn merged(s3: &S3Artifact, repo: &repository::S3ArtifactRepository) -> S3Artifact {
    let base = repo.location(s3.key.clone());
    if s3.bucket.is_some() && s3.bucket != repo.bucket {
        // Another bucket: only what it leaves out of the connection.
        return S3Artifact {
            endpoint: s3.endpoint.clone().or(base.endpoint),
            region: s3.region.clone().or(base.region),
            insecure: s3.insecure.or(base.insecure),
            access_key_secret: s3.access_key_secret.clone().or(base.access_key_secret),
            secret_key_secret: s3.secret_key_secret.clone().or(base.secret_key_secret),
            use_sdk_creds: s3.use_sdk_creds.or(base.use_sdk_creds),
            ..s3.clone()
        };
    }
    S3Artifact {
        endpoint: s3.endpoint.clone().or(base.endpoint),
        bucket: s3.bucket.clone().or(base.bucket),
        region: s3.region.clone().or(base.region),
        insecure: s3.insecure.or(base.insecure),
        access_key_secret: s3.access_key_secret.clone().or(base.access_key_secret),
        secret_key_secret: s3.secret_key_secret.clone().or(base.secret_key_secret),
        session_token_secret: s3.session_token_secret.clone().or(base.session_token_secret),
        role_arn: s3.role_arn.clone().or(base.role_arn),
        use_sdk_creds: s3.use_sdk_creds.or(base.use_sdk_creds),
        create_bucket_if_not_present: s3
            .create_bucket_if_not_present
            .clone()
            .or(base.create_bucket_if_not_present),
        encryption_options: s3.encryption_options.clone().or(base.encryption_options),
        ca_secret: s3.ca_secret.clone().or(base.ca_secret),
        key: s3.key.clone(),
    }
}

impl Chosen {
    /// The place of an artifact whose location is `s3`: its own bucket, or
    /// (key only) the repository's bucket, or the local repository.
    pub fn place_of(&self, s3: &S3Artifact) -> Place {
        match (self.s3(), s3.bucket.is_some()) {
            (Some(repo), _) => Place::S3(Box::new(merged(s3, repo))),
            (None, true) => Place::S3(Box::new(s3.clone())),
            (None, false) => Place::Local(s3.key.clone().unwrap_or_default()),
        }
    }

    /// The repository recorded in `status.artifactRepositoryRef`, so a
    /// resumed workflow keeps the repository it started with.
    pub fn from_status(status: &serde_json::Value) -> Option<Chosen> {
        let repository = match status.get("artifactRepository") {
            Some(r) => Some(serde_json::from_value(r.clone()).ok()?),
            None => None,
        };
        Some(Chosen {
            repository,
            status: Some(status.clone()),
        })
    }
}

/// Refuses the locations Argon cannot store in or fetch from yet.
pub fn unsupported(location: &ArtifactLocation) -> Option<String> {
    let kind = if location.gcs.is_some() {
        "GCS (gcs)"
    } else if location.azure.is_some() {
        "Azure Blob Storage (azure)"
    } else if location.oss.is_some() {
        "Alibaba Cloud OSS (oss)"
    } else if location.artifactory.is_some() {
        "Artifactory (artifactory)"
    } else if location.hdfs.is_some() {
        "HDFS (hdfs)"
    } else {
        return None;
    };
    Some(format!(
        "{kind} artifact locations are not supported yet: Argon stores artifacts on S3-compatible storage (s3) or \
         in its state dir, and fetches them from there, raw, http or git"
    ))
}

/// The engine's artifact stores: the local repository, the S3 clients, the
/// repositories it knows, and the secrets credentials are read from.
pub struct Artifacts {
    local: Bucket,
    s3: store::S3Clients,
    secrets: Secrets,
    repositories: RwLock<Repositories>,
}

impl Artifacts {
    /// The stores of an engine whose local repository is `root`.
    pub fn new(root: &Path, secrets: Secrets, repositories: Repositories) -> Result<Artifacts, String> {
        Ok(Artifacts {
            local: Bucket::local(root)?,
            s3: store::S3Clients::default(),
            secrets,
            repositories: RwLock::new(repositories),
        })
    }

    /// Replaces the ConfigMaps repositories are looked up in (the manifests changed).
    pub fn set_config_maps(&self, config_maps: Vec<ConfigMap>) {
        self.repositories.write().unwrap_or_else(|e| e.into_inner()).config_maps = config_maps;
    }

    /// The repository of a workflow (see [`Repositories::choose`]).
    pub fn choose(
        &self,
        namespace: &str,
        r: Option<&argon_crds::workflow::ArtifactRepositoryRef>,
    ) -> Result<Chosen, String> {
        self.repositories
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .choose(namespace, r)
    }

    /// The bucket holding `place`.
    pub async fn bucket(&self, place: &Place) -> Result<Bucket, String> {
        match place {
            Place::Local(_) => Ok(self.local.clone()),
            Place::S3(s3) => self.s3.bucket(s3, &self.secrets).await,
        }
    }

    /// Stores the file or directory `src` at `place`, packed as asked;
    /// `scratch` is a folder for the packed file. Returns the bytes stored.
    pub async fn save(&self, place: &Place, src: &Path, packing: Packing, scratch: &Path) -> Result<u64, String> {
        let bucket = self.bucket(place).await?;
        let key = place.key().to_string();
        if packing == Packing::None {
            if !src.is_dir() {
                return bucket.put_file(&key, src).await;
            }
            let dir = src.to_path_buf();
            let files = tokio::task::spawn_blocking(move || archive::files_under(&dir))
                .await
                .map_err(|e| e.to_string())?
                .map_err(|e| format!("cannot read {}: {e}", src.display()))?;
            let mut total = 0;
            for (path, rel) in files {
                total += bucket.put_file(&format!("{key}/{rel}"), &path).await?;
            }
            return Ok(total);
        }
        std::fs::create_dir_all(scratch).map_err(|e| format!("{}: {e}", scratch.display()))?;
        let packed = store::scratch_file(scratch, "pack");
        let (from, to) = (src.to_path_buf(), packed.clone());
        let res = tokio::task::spawn_blocking(move || archive::pack(&from, packing, &to))
            .await
            .map_err(|e| e.to_string());
        let res = match res.and_then(|r| r) {
            Ok(()) => bucket.put_file(&key, &packed).await,
            Err(e) => Err(e),
        };
        let _ = std::fs::remove_file(&packed);
        res
    }

    /// Places the artifact at `place` at `dest`: an archive unpacked, a
    /// plain object as it is, the objects under a key prefix (a directory
    /// stored as it is) as a directory.
    pub async fn load(&self, place: &Place, dest: &Path, scratch: &Path) -> Result<(), Missing> {
        let bucket = self.bucket(place).await.map_err(Missing::Failed)?;
        let key = place.key().to_string();
        std::fs::create_dir_all(scratch).map_err(|e| Missing::Failed(format!("{}: {e}", scratch.display())))?;
        let fetched = store::scratch_file(scratch, "fetch");
        match bucket.get_file(&key, &fetched).await {
            Ok(()) => {
                let (from, to) = (fetched.clone(), dest.to_path_buf());
                let res = tokio::task::spawn_blocking(move || archive::unpack(&from, &to))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r);
                let _ = std::fs::remove_file(&fetched);
                res.map_err(Missing::Failed)
            }
            Err(Missing::NotFound(m)) => {
                let _ = std::fs::remove_file(&fetched);
                let under = bucket.list_under(&key).await.map_err(Missing::Failed)?;
                if under.is_empty() {
                    return Err(Missing::NotFound(m));
                }
                for rel in under {
                    let target = dest.join(&rel);
                    if let Some(parent) = target.parent() {
                        std::fs::create_dir_all(parent)
                            .map_err(|e| Missing::Failed(format!("{}: {e}", parent.display())))?;
                    }
                    bucket.get_file(&format!("{key}/{rel}"), &target).await?;
                }
                Ok(())
            }
            Err(e) => {
                let _ = std::fs::remove_file(&fetched);
                Err(e)
            }
        }
    }

    /// Deletes the artifact at `place` (its object, or the objects under its key).
    pub async fn delete(&self, place: &Place) -> Result<bool, String> {
        self.bucket(place).await?.delete_all(place.key()).await
    }

    /// The stored object of `place` as a stream, for the API.
    pub async fn stream(
        &self,
        place: &Place,
    ) -> Result<futures::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>, Missing> {
        let bucket = self.bucket(place).await.map_err(Missing::Failed)?;
        bucket.stream(place.key()).await
    }

    /// The keys under `place`'s key, for a directory stored as it is.
    pub async fn list_under(&self, place: &Place) -> Result<Vec<String>, String> {
        self.bucket(place).await?.list_under(place.key()).await
    }
}

/// The variable value that names an output artifact for `from`: the key of
/// a local one, the JSON of an S3 location.
pub fn reference(location: &S3Artifact) -> String {
    if location.bucket.is_some() {
        serde_json::to_string(location).unwrap_or_default()
    } else {
        location.key.clone().unwrap_or_default()
    }
}

/// The location a [`reference`] names.
pub fn dereference(r: &str) -> S3Artifact {
    if r.starts_with('{')
        && let Ok(s3) = serde_json::from_str(r)
    {
        return s3;
    }
    S3Artifact {
        key: Some(r.to_string()),
        ..Default::default()
    }
}

/// The output artifacts recorded in a workflow's nodes, with their node id.
pub fn outputs_of(wf: &argon_crds::workflow::Workflow) -> Vec<(String, Artifact)> {
    let mut out = Vec::new();
    if let Some(status) = &wf.status {
        for (id, node) in &status.nodes {
            if let Some(o) = &node.outputs {
                for a in &o.artifacts {
                    if a.location.s3.is_some() {
                        out.push((id.clone(), a.clone()));
                    }
                }
            }
        }
    }
    out
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
