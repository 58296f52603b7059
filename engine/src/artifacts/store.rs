//! Where artifact objects live: one [`object_store::ObjectStore`] per place,
//! the local repository under the state dir or an S3-compatible bucket
//! (through `object_store`'s S3 client: SigV4, multipart uploads, retries
//! on 5xx and timeouts). Objects move between stores and files on disk in
//! chunks, so memory stays bounded whatever the artifact's size.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon_crds::secret::Secrets;
use argon_crds::workflow::S3Artifact;
use futures::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder, AwsAuthorizer};
use object_store::local::LocalFileSystem;
use object_store::path::Path as Key;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig, WriteMultipart};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The size of one part of a multipart upload.
pub const PART_SIZE: usize = 8 << 20;
/// Parts of one upload in flight at once (memory: about this many parts).
const PARTS_IN_FLIGHT: usize = 2;

/// One place objects are stored in, and how to name it in messages.
#[derive(Clone)]
pub struct Bucket {
    store: Arc<dyn ObjectStore>,
    /// `s3://BUCKET` (at ENDPOINT) or the local folder, for messages.
    pub name: String,
}

impl std::fmt::Debug for Bucket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.name)
    }
}

/// Whether an object's absence is the error.
#[derive(Debug)]
pub enum Missing {
    /// Nothing is stored at the key (nor under it, as a prefix).
    NotFound(String),
    /// Anything else.
    Failed(String),
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Missing::NotFound(m) | Missing::Failed(m) => f.write_str(m),
        }
    }
}

fn key(k: &str) -> Result<Key, String> {
    Key::parse(k.trim_start_matches('/')).map_err(|e| format!("invalid artifact key '{k}': {e}"))
}

impl Bucket {
    /// The local repository rooted at `root`.
    pub fn local(root: &Path) -> Result<Bucket, String> {
        std::fs::create_dir_all(root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
        let store = LocalFileSystem::new_with_prefix(root).map_err(|e| e.to_string())?;
        Ok(Bucket {
            store: Arc::new(store),
            name: root.display().to_string(),
        })
    }

    fn describe(&self, k: &str) -> String {
        if self.name.starts_with("s3://") {
            format!("{}/{k}", self.name)
        } else {
            format!("'{k}' in the local artifact repository")
        }
    }

    fn failure(&self, verb: &str, k: &str, e: object_store::Error) -> String {
        let hint = match &e {
            object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => {
                " (the credentials were refused: check accessKeySecret and secretKeySecret)"
            }
            _ => "",
        };
        format!("cannot {verb} {}: {e}{hint}", self.describe(k))
    }

    /// Uploads the file at `file` as object `k`: one request for a small
    /// file, else a multipart upload of [`PART_SIZE`] parts with at most
    /// [`PARTS_IN_FLIGHT`] in flight.
    pub async fn put_file(&self, k: &str, file: &Path) -> Result<u64, String> {
        let location = key(k)?;
        let len = tokio::fs::metadata(file)
            .await
            .map_err(|e| format!("{}: {e}", file.display()))?
            .len();
        let mut f = tokio::fs::File::open(file)
            .await
            .map_err(|e| format!("{}: {e}", file.display()))?;
        if len <= PART_SIZE as u64 {
            let mut bytes = Vec::with_capacity(len as usize);
            f.read_to_end(&mut bytes)
                .await
                .map_err(|e| format!("{}: {e}", file.display()))?;
            self.store
                .put(&location, bytes.into())
                .await
                .map_err(|e| self.failure("store", k, e))?;
            return Ok(len);
        }
        let upload = self
            .store
            .put_multipart(&location)
            .await
            .map_err(|e| self.failure("start uploading", k, e))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
        let mut buf = vec![0u8; 1 << 20];
        let res: Result<(), String> = async {
            loop {
                let n = f.read(&mut buf).await.map_err(|e| format!("{}: {e}", file.display()))?;
                if n == 0 {
                    return Ok(());
                }
                writer
                    .wait_for_capacity(PARTS_IN_FLIGHT)
                    .await
                    .map_err(|e| self.failure("upload a part of", k, e))?;
                writer.write(&buf[..n]);
            }
        }
        .await;
        if let Err(e) = res {
            let _ = writer.abort().await;
            return Err(e);
        }
        writer
            .finish()
            .await
            .map_err(|e| self.failure("finish uploading", k, e))?;
        Ok(len)
    }

    /// Downloads object `k` to the file `file`, chunk by chunk.
    pub async fn get_file(&self, k: &str, file: &Path) -> Result<(), Missing> {
        let location = key(k).map_err(Missing::Failed)?;
        let got = match self.store.get(&location).await {
            Ok(g) => g,
            Err(object_store::Error::NotFound { .. }) => {
                return Err(Missing::NotFound(format!("{} does not exist", self.describe(k))));
            }
            Err(e) => return Err(Missing::Failed(self.failure("fetch", k, e))),
        };
        let mut out = tokio::fs::File::create(file)
            .await
            .map_err(|e| Missing::Failed(format!("{}: {e}", file.display())))?;
        let mut stream = got.into_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| Missing::Failed(self.failure("fetch", k, e)))?;
            out.write_all(&chunk)
                .await
                .map_err(|e| Missing::Failed(format!("{}: {e}", file.display())))?;
        }
        out.flush()
            .await
            .map_err(|e| Missing::Failed(format!("{}: {e}", file.display())))?;
        Ok(())
    }

    /// The keys under `prefix/`, relative to it.
    pub async fn list_under(&self, prefix: &str) -> Result<Vec<String>, String> {
        let location = key(prefix)?;
        let base = format!("{}/", location.as_ref());
        let listed: Vec<_> = self
            .store
            .list(Some(&location))
            .try_collect()
            .await
            .map_err(|e| self.failure("list", prefix, e))?;
        let mut keys: Vec<String> = listed
            .into_iter()
            .filter_map(|m| m.location.as_ref().strip_prefix(&base).map(str::to_string))
            .collect();
        keys.sort();
        Ok(keys)
    }

    /// Deletes object `k` and the objects under `k/`; true when any existed.
    pub async fn delete_all(&self, k: &str) -> Result<bool, String> {
        let mut any = false;
        let location = key(k)?;
        match self.store.delete(&location).await {
            Ok(()) => any = true,
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.failure("delete", k, e)),
        }
        for rel in self.list_under(k).await? {
            let child = format!("{}/{rel}", location.as_ref());
            self.store
                .delete(&key(&child)?)
                .await
                .map_err(|e| self.failure("delete", &child, e))?;
            any = true;
        }
        Ok(any)
    }

    /// The object `k` as a stream of chunks, for the API.
    pub async fn stream(
        &self,
        k: &str,
    ) -> Result<futures::stream::BoxStream<'static, std::io::Result<bytes::Bytes>>, Missing> {
        let location = key(k).map_err(Missing::Failed)?;
        match self.store.get(&location).await {
            Ok(g) => Ok(g.into_stream().map_err(std::io::Error::other).boxed()),
            Err(object_store::Error::NotFound { .. }) => {
                Err(Missing::NotFound(format!("{} does not exist", self.describe(k))))
            }
            Err(e) => Err(Missing::Failed(self.failure("fetch", k, e))),
        }
    }
}

/// The S3 clients made so far, by everything that tells them apart.
#[derive(Default)]
pub struct S3Clients {
    clients: Mutex<HashMap<String, Arc<S3Client>>>,
}

struct S3Client {
    store: Arc<AmazonS3>,
    bucket: Bucket,
    /// The bucket was created (or found) once already.
    ensured: tokio::sync::OnceCell<()>,
}

/// The settings of an S3 location that make a client, with its secrets read.
struct S3Settings {
    url: Option<String>,
    bucket: String,
    region: String,
    access: Option<(String, String, Option<String>)>,
    ca: Option<String>,
    sse_kms: Option<String>,
    sse_c: Option<String>,
}

fn read_secret(
    secrets: &Secrets,
    what: &str,
    sel: &k8s_openapi::api::core::v1::SecretKeySelector,
) -> Result<String, String> {
    secrets
        .require(sel)
        .map(|v| v.trim_end_matches('\n').to_string())
        .map_err(|e| format!("s3 {what}: {e}"))
}

impl S3Settings {
    fn of(s3: &S3Artifact, secrets: &Secrets) -> Result<S3Settings, String> {
        let bucket = s3.bucket.clone().filter(|b| !b.is_empty()).ok_or_else(|| {
            "the s3 location has no bucket: set s3.bucket, or configure an artifact repository (artifactRepository, \
             the artifact-repositories ConfigMap)"
                .to_string()
        })?;
        if s3.role_arn.is_some() {
            return Err(
                "s3.roleARN is not supported yet: give accessKeySecret and secretKeySecret, or useSDKCreds".into(),
            );
        }
        let insecure = s3.insecure.unwrap_or(false);
        let url = s3.endpoint.as_ref().filter(|e| !e.is_empty()).map(|e| {
            if e.contains("://") {
                e.trim_end_matches('/').to_string()
            } else {
                format!(
                    "{}://{}",
                    if insecure { "http" } else { "https" },
                    e.trim_end_matches('/')
                )
            }
        });
        let access = if s3.use_sdk_creds.unwrap_or(false) {
            None
        } else {
            match (&s3.access_key_secret, &s3.secret_key_secret) {
                (Some(a), Some(s)) => Some((
                    read_secret(secrets, "accessKeySecret", a)?,
                    read_secret(secrets, "secretKeySecret", s)?,
                    s3.session_token_secret
                        .as_ref()
                        .map(|t| read_secret(secrets, "sessionTokenSecret", t))
                        .transpose()?,
                )),
                _ => {
                    return Err(format!(
                        "the s3 location of bucket '{bucket}' has no credentials: give accessKeySecret and \
                         secretKeySecret (files under --secrets-dir), or useSDKCreds: true for the AWS \
                         environment variables and instance credentials"
                    ));
                }
            }
        };
        let enc = s3.encryption_options.as_ref();
        Ok(S3Settings {
            url,
            bucket,
            region: s3
                .region
                .clone()
                .filter(|r| !r.is_empty())
                .unwrap_or_else(|| "us-east-1".into()),
            access,
            ca: s3
                .ca_secret
                .as_ref()
                .map(|c| read_secret(secrets, "caSecret", c))
                .transpose()?,
            sse_kms: enc
                .filter(|e| e.enable_encryption.unwrap_or(false))
                .and_then(|e| e.kms_key_id.clone()),
            sse_c: enc
                .and_then(|e| e.server_side_customer_key_secret.as_ref())
                .map(|c| read_secret(secrets, "serverSideCustomerKeySecret", c))
                .transpose()?,
        })
    }

    fn cache_key(&self) -> String {
        format!(
            "{:?}|{}|{}|{:?}|{:?}|{:?}|{:?}",
            self.url, self.bucket, self.region, self.access, self.ca, self.sse_kms, self.sse_c
        )
    }
}

impl S3Clients {
    /// The bucket of an S3 location (a client made once per settings),
    /// created first when the location asks for it and it does not exist.
    pub async fn bucket(&self, s3: &S3Artifact, secrets: &Secrets) -> Result<Bucket, String> {
        let settings = S3Settings::of(s3, secrets)?;
        let client = self.client(&settings)?;
        if s3.create_bucket_if_not_present.is_some() {
            let locking = s3
                .create_bucket_if_not_present
                .as_ref()
                .and_then(|c| c.object_locking)
                .unwrap_or(false);
            client
                .ensured
                .get_or_try_init(|| create_bucket(&client.store, &settings, locking))
                .await?;
        }
        Ok(client.bucket.clone())
    }

    fn client(&self, settings: &S3Settings) -> Result<Arc<S3Client>, String> {
        let cache_key = settings.cache_key();
        let mut clients = self.clients.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = clients.get(&cache_key) {
            return Ok(c.clone());
        }
        let mut builder = match &settings.access {
            None => AmazonS3Builder::from_env(),
            Some((id, secret, token)) => {
                let b = AmazonS3Builder::new()
                    .with_access_key_id(id)
                    .with_secret_access_key(secret);
                match token {
                    Some(t) => b.with_token(t),
                    None => b,
                }
            }
        }
        .with_bucket_name(&settings.bucket)
        .with_region(&settings.region)
        .with_retry(RetryConfig {
            max_retries: 6,
            retry_timeout: Duration::from_secs(180),
            ..Default::default()
        });
        let mut options = ClientOptions::new()
            .with_connect_timeout(Duration::from_secs(10))
            .with_timeout(Duration::from_secs(300));
        if let Some(url) = &settings.url {
            builder = builder.with_endpoint(url).with_virtual_hosted_style_request(false);
            options = options.with_allow_http(url.starts_with("http://"));
        }
        if let Some(pem) = &settings.ca {
            let cert = object_store::Certificate::from_pem(pem.as_bytes())
                .map_err(|e| format!("s3 caSecret is not a PEM certificate: {e}"))?;
            options = options.with_root_certificate(cert);
        }
        if let Some(kms) = &settings.sse_kms {
            builder = builder.with_sse_kms_encryption(kms);
        }
        if let Some(key) = &settings.sse_c {
            builder = builder.with_ssec_encryption(key);
        }
        let store = builder
            .with_client_options(options)
            .build()
            .map_err(|e| format!("cannot set up the S3 client for bucket '{}': {e}", settings.bucket))?;
        let store = Arc::new(store);
        let name = match &settings.url {
            Some(u) => format!("s3://{} at {u}", settings.bucket),
            None => format!("s3://{}", settings.bucket),
        };
        // Messages name objects as s3://BUCKET/KEY; the endpoint goes after.
        let client = Arc::new(S3Client {
            store: store.clone(),
            bucket: Bucket {
                store,
                name: format!("s3://{}", settings.bucket),
            },
            ensured: tokio::sync::OnceCell::new(),
        });
        tracing::debug!(bucket = %name, "s3 client ready");
        clients.insert(cache_key, client.clone());
        Ok(client)
    }
}

/// Creates the bucket unless it exists (object_store has no call for it:
/// a SigV4-signed `PUT /BUCKET`, as S3's CreateBucket is).
async fn create_bucket(store: &AmazonS3, settings: &S3Settings, locking: bool) -> Result<(), String> {
    let base = settings
        .url
        .clone()
        .unwrap_or_else(|| format!("https://s3.{}.amazonaws.com", settings.region));
    let url = format!("{base}/{}", settings.bucket);
    let body = if settings.region == "us-east-1" {
        String::new()
    } else {
        format!(
            "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><LocationConstraint>{}\
             </LocationConstraint></CreateBucketConfiguration>",
            settings.region
        )
    };
    let credential = store
        .credentials()
        .get_credential()
        .await
        .map_err(|e| format!("cannot get S3 credentials to create bucket '{}': {e}", settings.bucket))?;
    let mut builder = http::Request::builder().method("PUT").uri(&url);
    if locking {
        builder = builder.header("x-amz-bucket-object-lock-enabled", "true");
    }
    let mut request: object_store::client::HttpRequest = builder
        .body(body.clone().into())
        .map_err(|e| format!("cannot create bucket '{}': {e}", settings.bucket))?;
    AwsAuthorizer::new(&credential, "s3", &settings.region)
        .try_authorize(&mut request, None)
        .map_err(|e| format!("cannot sign the request creating bucket '{}': {e}", settings.bucket))?;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .map_err(|e| e.to_string())?;
    let mut req = client.put(&url).body(body);
    for (name, value) in request.headers() {
        req = req.header(name.as_str(), value.as_bytes());
    }
    let resp = req
        .send()
        .await
        .map_err(|e| format!("cannot create bucket '{}' at {base}: {e}", settings.bucket))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    if status.is_success() || text.contains("BucketAlreadyOwnedByYou") {
        tracing::info!(bucket = %settings.bucket, "created the artifact bucket");
        return Ok(());
    }
    Err(format!(
        "cannot create bucket '{}' at {base}: HTTP {status}: {}",
        settings.bucket,
        s3_error_message(&text)
    ))
}

/// The `<Code>` and `<Message>` of an S3 error body.
fn s3_error_message(body: &str) -> String {
    let field = |tag: &str| {
        let open = format!("<{tag}>");
        let close = format!("</{tag}>");
        let start = body.find(&open)? + open.len();
        let end = body[start..].find(&close)? + start;
        Some(body[start..end].to_string())
    };
    match (field("Code"), field("Message")) {
        (Some(c), Some(m)) => format!("{c}: {m}"),
        (Some(c), None) => c,
        _ => body.chars().take(200).collect(),
    }
}

/// A scratch file path under `dir` for one artifact transfer.
pub fn scratch_file(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!(".argon-{}-{name}", uuid::Uuid::new_v4().simple()))
}
