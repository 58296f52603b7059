//! Artifacts: files and directories that steps produce and consume, and the
//! places they are fetched from or stored in (S3, git, HTTP, GCS, ...).

use k8s_openapi::api::core::v1::{EnvVar, SecretKeySelector, Volume, VolumeMount};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Metadata, null_as_default};

/// A file or directory placed at `path` (input) or saved from it (output).
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Artifact {
    /// The artifact's name, unique among a template's inputs or outputs.
    pub name: String,
    /// The path in the container.
    pub path: Option<String>,
    /// The file mode set when an input artifact is placed (e.g. 0755, read as octal).
    #[serde(default, deserialize_with = "file_mode")]
    #[schemars(schema_with = "file_mode_schema")]
    pub mode: Option<i32>,
    /// Another step's artifact to use (`{{steps.a.outputs.artifacts.x}}`).
    pub from: Option<String>,
    /// Where the artifact is fetched from or stored.
    #[serde(flatten)]
    pub location: ArtifactLocation,
    /// Also export the output as `{{workflow.outputs.artifacts.NAME}}`.
    pub global_name: Option<String>,
    /// How the artifact is packed when stored (default: tar and gzip).
    pub archive: Option<ArchiveStrategy>,
    /// A missing artifact is not an error.
    pub optional: Option<bool>,
    /// Use only this sub-path of the source.
    pub sub_path: Option<String>,
    /// Apply `mode` to every file of a directory.
    pub recurse_mode: Option<bool>,
    /// An expression giving the artifact to use.
    pub from_expression: Option<String>,
    /// When this artifact is deleted (overrides the workflow's artifactGC).
    #[serde(default, rename = "artifactGC")]
    pub artifact_gc: Option<ArtifactGc>,
    /// The artifact has been deleted (set at run time).
    pub deleted: Option<bool>,
}

/// Reads a file mode. YAML 1.1 (what Kubernetes tooling reads manifests
/// with) takes `0755` as octal; a YAML 1.2 reader hands it over as the text
/// "0755", so a text with a leading zero (or `0o`) is read as octal here.
fn file_mode<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<i32>, D::Error> {
    use serde::de::Error;
    let v = Option::<serde_json::Value>::deserialize(deserializer)?;
    let Some(v) = v else { return Ok(None) };
    let mode = match &v {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => parse_file_mode(s),
        _ => None,
    };
    match mode.and_then(|m| i32::try_from(m).ok()) {
        Some(m) => Ok(Some(m)),
        None => Err(D::Error::custom(format!(
            "invalid file mode {v}: expected a number such as 0755"
        ))),
    }
}

/// `0755` and `0o755` are octal, `493` is decimal.
pub fn parse_file_mode(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Some(oct) = s.strip_prefix("0o").or_else(|| s.strip_prefix("0O")) {
        return i64::from_str_radix(oct, 8).ok();
    }
    if s.len() > 1 && s.starts_with('0') {
        return i64::from_str_radix(&s[1..], 8).ok();
    }
    s.parse().ok()
}

fn file_mode_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "The file mode set when an input artifact is placed (e.g. 0755, read as octal).",
        "x-kubernetes-int-or-string": true,
        "anyOf": [{"type": "integer"}, {"type": "string"}]
    })
}

/// Where an artifact is fetched from or stored: at most one location.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactLocation {
    /// Archive the container logs as well.
    pub archive_logs: Option<bool>,
    /// An S3 (or S3-compatible, e.g. MinIO) object.
    pub s3: Option<S3Artifact>,
    /// A git repository checkout.
    pub git: Option<GitArtifact>,
    /// A file served over HTTP.
    pub http: Option<HttpArtifact>,
    /// An Artifactory file.
    pub artifactory: Option<ArtifactoryArtifact>,
    /// An HDFS file (taken as written).
    pub hdfs: Option<serde_json::Value>,
    /// Literal content.
    pub raw: Option<RawArtifact>,
    /// An Alibaba Cloud OSS object.
    pub oss: Option<OssArtifact>,
    /// A Google Cloud Storage object.
    pub gcs: Option<GcsArtifact>,
    /// An Azure Blob Storage blob.
    pub azure: Option<AzureArtifact>,
}

impl ArtifactLocation {
    /// No location is set.
    pub fn is_empty(&self) -> bool {
        self.s3.is_none()
            && self.git.is_none()
            && self.http.is_none()
            && self.artifactory.is_none()
            && self.hdfs.is_none()
            && self.raw.is_none()
            && self.oss.is_none()
            && self.gcs.is_none()
            && self.azure.is_none()
    }
}

/// How an artifact is packed when stored.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ArchiveStrategy {
    /// Tar and gzip it.
    pub tar: Option<TarStrategy>,
    /// Store the files as they are.
    pub none: Option<NoneStrategy>,
    /// Zip it.
    pub zip: Option<ZipStrategy>,
}

/// Tar and gzip an artifact.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TarStrategy {
    /// The gzip level, 0 (none) to 9.
    pub compression_level: Option<i32>,
}

/// Store an artifact's files as they are (an empty object).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct NoneStrategy {}

/// Zip an artifact (an empty object).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct ZipStrategy {}

/// When artifacts are deleted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum ArtifactGcStrategy {
    /// Not set: inherit.
    #[serde(rename = "")]
    Undefined,
    /// When the workflow completes.
    OnWorkflowCompletion,
    /// When the workflow is deleted.
    OnWorkflowDeletion,
    /// Never.
    Never,
}

/// When an artifact is deleted, and how the deleting pod runs.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactGc {
    /// When the artifact is deleted.
    pub strategy: Option<ArtifactGcStrategy>,
    /// Labels and annotations of the deleting pod.
    pub pod_metadata: Option<Metadata>,
    /// The service account of the deleting pod.
    pub service_account_name: Option<String>,
    /// Environment of the deleting pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub env: Vec<EnvVar>,
    /// Volumes of the deleting pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub volumes: Vec<Volume>,
    /// Volume mounts of the deleting pod.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub volume_mounts: Vec<VolumeMount>,
}

/// When a workflow's artifacts are deleted.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkflowLevelArtifactGc {
    /// The default for every artifact of the workflow.
    #[serde(flatten)]
    pub artifact_gc: ArtifactGc,
    /// Remove the workflow's finalizer even when deleting artifacts failed.
    pub force_finalizer_removal: Option<bool>,
    /// A strategic merge patch applied to the deleting pod.
    pub pod_spec_patch: Option<String>,
}

/// An S3 object.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Artifact {
    /// The host (and port) of the S3 endpoint.
    pub endpoint: Option<String>,
    /// The bucket.
    pub bucket: Option<String>,
    /// The bucket's region.
    pub region: Option<String>,
    /// Connect without TLS.
    pub insecure: Option<bool>,
    /// The secret key holding the access key.
    pub access_key_secret: Option<SecretKeySelector>,
    /// The secret key holding the secret key.
    pub secret_key_secret: Option<SecretKeySelector>,
    /// The secret key holding a session token.
    pub session_token_secret: Option<SecretKeySelector>,
    /// The role to assume.
    #[serde(default, rename = "roleARN")]
    pub role_arn: Option<String>,
    /// Take credentials from the SDK's default chain.
    #[serde(default, rename = "useSDKCreds")]
    pub use_sdk_creds: Option<bool>,
    /// Create the bucket when it does not exist.
    pub create_bucket_if_not_present: Option<CreateS3BucketOptions>,
    /// Server-side encryption settings.
    pub encryption_options: Option<S3EncryptionOptions>,
    /// The secret key holding the CA that verifies the endpoint.
    pub ca_secret: Option<SecretKeySelector>,
    /// The object key.
    pub key: Option<String>,
}

/// Options of bucket creation.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CreateS3BucketOptions {
    /// Enable object locking.
    pub object_locking: Option<bool>,
}

/// S3 server-side encryption settings.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3EncryptionOptions {
    /// The KMS key to encrypt with.
    pub kms_key_id: Option<String>,
    /// A JSON encryption context.
    pub kms_encryption_context: Option<String>,
    /// Encrypt objects.
    pub enable_encryption: Option<bool>,
    /// The secret key holding a customer key (SSE-C).
    pub server_side_customer_key_secret: Option<SecretKeySelector>,
}

/// A git repository checkout.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GitArtifact {
    /// The repository URL.
    pub repo: String,
    /// The commit, tag or branch to check out.
    pub revision: Option<String>,
    /// Make a shallow clone of this many commits.
    pub depth: Option<u64>,
    /// Refs to fetch before the checkout.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub fetch: Vec<String>,
    /// The secret key holding the username.
    pub username_secret: Option<SecretKeySelector>,
    /// The secret key holding the password.
    pub password_secret: Option<SecretKeySelector>,
    /// The secret key holding an SSH private key.
    pub ssh_private_key_secret: Option<SecretKeySelector>,
    /// Skip SSH host key checking.
    pub insecure_ignore_host_key: Option<bool>,
    /// Do not check out submodules.
    pub disable_submodules: Option<bool>,
    /// Clone only `branch`.
    pub single_branch: Option<bool>,
    /// The branch cloned with singleBranch.
    pub branch: Option<String>,
    /// Skip TLS verification of the repository.
    #[serde(default, rename = "insecureSkipTLS")]
    pub insecure_skip_tls: Option<bool>,
}

/// A file served over HTTP.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct HttpArtifact {
    /// The URL.
    pub url: String,
    /// Request headers.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub headers: Vec<Header>,
    /// How to authenticate.
    pub auth: Option<HttpAuth>,
}

/// A request header.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Header {
    /// The header name.
    pub name: String,
    /// The header value.
    pub value: String,
}

/// How to authenticate an HTTP artifact request.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HttpAuth {
    /// A client certificate.
    pub client_cert: Option<ClientCertAuth>,
    /// OAuth2 client credentials.
    pub oauth2: Option<OAuth2Auth>,
    /// Basic authentication.
    pub basic_auth: Option<BasicAuth>,
}

/// A client certificate.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClientCertAuth {
    /// The secret key holding the certificate.
    pub client_cert_secret: Option<SecretKeySelector>,
    /// The secret key holding the private key.
    pub client_key_secret: Option<SecretKeySelector>,
}

/// OAuth2 client credentials.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OAuth2Auth {
    /// The secret key holding the client id.
    #[serde(default, rename = "clientIDSecret")]
    pub client_id_secret: Option<SecretKeySelector>,
    /// The secret key holding the client secret.
    pub client_secret_secret: Option<SecretKeySelector>,
    /// The secret key holding the token URL.
    #[serde(default, rename = "tokenURLSecret")]
    pub token_url_secret: Option<SecretKeySelector>,
    /// Scopes requested.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub scopes: Vec<String>,
    /// Extra parameters of the token request.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub endpoint_params: Vec<OAuth2EndpointParam>,
}

/// An extra parameter of an OAuth2 token request.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct OAuth2EndpointParam {
    /// The parameter name.
    pub key: String,
    /// The parameter value.
    pub value: Option<String>,
}

/// Basic authentication.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BasicAuth {
    /// The secret key holding the username.
    pub username_secret: Option<SecretKeySelector>,
    /// The secret key holding the password.
    pub password_secret: Option<SecretKeySelector>,
}

/// An Artifactory file.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactoryArtifact {
    /// The URL of the file.
    pub url: String,
    /// The secret key holding the username.
    pub username_secret: Option<SecretKeySelector>,
    /// The secret key holding the password.
    pub password_secret: Option<SecretKeySelector>,
}

/// Literal artifact content.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct RawArtifact {
    /// The content.
    pub data: String,
}

/// A Google Cloud Storage object.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GcsArtifact {
    /// The bucket.
    pub bucket: Option<String>,
    /// The secret key holding the service account key.
    pub service_account_key_secret: Option<SecretKeySelector>,
    /// The object key.
    pub key: String,
}

/// An Alibaba Cloud OSS object.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OssArtifact {
    /// The endpoint host.
    pub endpoint: Option<String>,
    /// The bucket.
    pub bucket: Option<String>,
    /// The secret key holding the access key.
    pub access_key_secret: Option<SecretKeySelector>,
    /// The secret key holding the secret key.
    pub secret_key_secret: Option<SecretKeySelector>,
    /// Create the bucket when it does not exist.
    pub create_bucket_if_not_present: Option<bool>,
    /// A temporary security token.
    pub security_token: Option<String>,
    /// The bucket's lifecycle rule (taken as written).
    pub lifecycle_rule: Option<serde_json::Value>,
    /// Take credentials from the SDK's default chain.
    #[serde(default, rename = "useSDKCreds")]
    pub use_sdk_creds: Option<bool>,
    /// The object key.
    pub key: String,
}

/// An Azure Blob Storage blob.
#[serde_with::skip_serializing_none]
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AzureArtifact {
    /// The service URL (`https://ACCOUNT.blob.core.windows.net`).
    pub endpoint: String,
    /// The container.
    pub container: String,
    /// The secret key holding the account key.
    pub account_key_secret: Option<SecretKeySelector>,
    /// Take credentials from the SDK's default chain.
    #[serde(default, rename = "useSDKCreds")]
    pub use_sdk_creds: Option<bool>,
    /// The blob name.
    pub blob: String,
}
