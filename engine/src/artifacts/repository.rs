//! Artifact repositories as Argo configures them: the engine's default
//! (`artifactRepository` in its config, or the `workflow-controller-configmap`
//! ConfigMap), the ConfigMaps named by `spec.artifactRepositoryRef` (default
//! `artifact-repositories`, its default key named by the
//! `workflows.argoproj.io/default-artifact-repository` annotation), and the
//! choice of one for a workflow.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use argon_crds::workflow::{ArtifactRepositoryRef, CreateS3BucketOptions, S3Artifact, S3EncryptionOptions};
use k8s_openapi::api::core::v1::{ConfigMap, SecretKeySelector};
use serde::{Deserialize, Serialize};

/// The ConfigMap `spec.artifactRepositoryRef` names when it names none.
pub const DEFAULT_CONFIG_MAP: &str = "artifact-repositories";
/// The annotation naming a ConfigMap's default key.
pub const DEFAULT_KEY_ANNOTATION: &str = "workflows.argoproj.io/default-artifact-repository";
/// The ConfigMap holding the engine's configuration (`artifactRepository`).
pub const CONTROLLER_CONFIG_MAP: &str = "workflow-controller-configmap";
/// Argo's default `keyFormat`.
pub const DEFAULT_KEY_FORMAT: &str = "{{workflow.name}}/{{pod.name}}";

/// Where a workflow's artifacts are stored (Argo's `ArtifactRepository`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ArtifactRepository {
    /// Store every step's logs next to its outputs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub archive_logs: Option<bool>,
    /// An S3-compatible bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3ArtifactRepository>,
    /// A Google Cloud Storage bucket (not supported yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gcs: Option<serde_json::Value>,
    /// An Azure Blob Storage container (not supported yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub azure: Option<serde_json::Value>,
    /// An Alibaba Cloud OSS bucket (not supported yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oss: Option<serde_json::Value>,
    /// An Artifactory repository (not supported yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifactory: Option<serde_json::Value>,
    /// An HDFS cluster (not supported yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hdfs: Option<serde_json::Value>,
}

/// An S3 bucket as a repository: the bucket, and how keys are made.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct S3ArtifactRepository {
    /// The host (and port) of the S3 endpoint; AWS when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// The bucket's region (default `us-east-1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Connect over plain HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub insecure: Option<bool>,
    /// The secret key holding the access key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_secret: Option<SecretKeySelector>,
    /// The secret key holding the secret access key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_key_secret: Option<SecretKeySelector>,
    /// The secret key holding a session token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_token_secret: Option<SecretKeySelector>,
    /// A role to assume (not supported yet).
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "roleARN")]
    pub role_arn: Option<String>,
    /// Take credentials from the environment (the AWS SDK's default chain).
    #[serde(default, skip_serializing_if = "Option::is_none", rename = "useSDKCreds")]
    pub use_sdk_creds: Option<bool>,
    /// Create the bucket when it does not exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_bucket_if_not_present: Option<CreateS3BucketOptions>,
    /// Server-side encryption.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encryption_options: Option<S3EncryptionOptions>,
    /// The secret key holding the CA certificate (PEM) of the endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret: Option<SecretKeySelector>,
    /// How output keys are made (default `{{workflow.name}}/{{pod.name}}`);
    /// the artifact's file name is added after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_format: Option<String>,
    /// A prefix before the default key format (deprecated upstream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_prefix: Option<String>,
}

impl S3ArtifactRepository {
    /// The location of `key` in this repository's bucket.
    pub fn location(&self, key: Option<String>) -> S3Artifact {
        S3Artifact {
            endpoint: self.endpoint.clone(),
            bucket: self.bucket.clone(),
            region: self.region.clone(),
            insecure: self.insecure,
            access_key_secret: self.access_key_secret.clone(),
            secret_key_secret: self.secret_key_secret.clone(),
            session_token_secret: self.session_token_secret.clone(),
            role_arn: self.role_arn.clone(),
            use_sdk_creds: self.use_sdk_creds,
            create_bucket_if_not_present: self.create_bucket_if_not_present.clone(),
            encryption_options: self.encryption_options.clone(),
            ca_secret: self.ca_secret.clone(),
            key,
        }
    }

    /// The key format outputs are stored under.
    pub fn key_format(&self) -> String {
        match (&self.key_format, &self.key_prefix) {
            (Some(f), _) => f.clone(),
            (None, Some(p)) => format!("{}/{DEFAULT_KEY_FORMAT}", p.trim_end_matches('/')),
            (None, None) => DEFAULT_KEY_FORMAT.to_string(),
        }
    }
}

impl ArtifactRepository {
    /// Refuses the kinds Argon does not store artifacts in yet.
    pub fn check(&self) -> Result<(), String> {
        for (kind, set) in [
            ("GCS (gcs)", self.gcs.is_some()),
            ("Azure Blob Storage (azure)", self.azure.is_some()),
            ("Alibaba Cloud OSS (oss)", self.oss.is_some()),
            ("Artifactory (artifactory)", self.artifactory.is_some()),
            ("HDFS (hdfs)", self.hdfs.is_some()),
        ] {
            if set {
                return Err(format!(
                    "{kind} artifact repositories are not supported yet: Argon stores artifacts on S3-compatible \
                     storage (s3) or in its state dir"
                ));
            }
        }
        let Some(s3) = &self.s3 else {
            return Err("the artifact repository names no storage: give it an s3 bucket".into());
        };
        if s3.bucket.as_deref().unwrap_or("").is_empty() {
            return Err("the s3 artifact repository has no bucket: set s3.bucket".into());
        }
        if s3.role_arn.is_some() {
            return Err(
                "s3.roleARN is not supported yet: give accessKeySecret and secretKeySecret, or useSDKCreds".into(),
            );
        }
        Ok(())
    }
}

/// Reads an artifact repository from YAML (a ConfigMap's value).
pub fn parse(text: &str) -> Result<ArtifactRepository, String> {
    let repo: ArtifactRepository = serde_norway::from_str(text).map_err(|e| e.to_string())?;
    repo.check()?;
    Ok(repo)
}

/// The engine's configuration as Argo's controller config has it; only
/// `artifactRepository` is read, the rest is Argo's and left alone.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ControllerConfig {
    #[serde(default)]
    artifact_repository: Option<ArtifactRepository>,
}

/// The `artifactRepository` of an engine config file: either a YAML
/// document with an `artifactRepository` key, or Argo's
/// `workflow-controller-configmap` ConfigMap.
pub fn engine_config(path: &Path) -> Result<Option<ArtifactRepository>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let value: serde_json::Value = serde_norway::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    if value.get("kind").and_then(|k| k.as_str()) == Some("ConfigMap") {
        let cm: ConfigMap = serde_json::from_value(value).map_err(|e| format!("{}: {e}", path.display()))?;
        return controller_config_map(&cm).map_err(|e| format!("{}: {e}", path.display()));
    }
    let config: ControllerConfig = serde_json::from_value(value).map_err(|e| format!("{}: {e}", path.display()))?;
    if let Some(repo) = &config.artifact_repository {
        repo.check()
            .map_err(|e| format!("{}: artifactRepository: {e}", path.display()))?;
    }
    Ok(config.artifact_repository)
}

/// The `artifactRepository` of a `workflow-controller-configmap`.
fn controller_config_map(cm: &ConfigMap) -> Result<Option<ArtifactRepository>, String> {
    match cm.data.as_ref().and_then(|d| d.get("artifactRepository")) {
        Some(text) => parse(text).map(Some).map_err(|e| format!("artifactRepository: {e}")),
        None => Ok(None),
    }
}

/// The ConfigMaps (`apiVersion: v1`) among the manifests under `paths`.
pub fn config_maps(paths: &[PathBuf]) -> Result<Vec<ConfigMap>, String> {
    let files = argon_crds::manifest::manifest_files(paths).map_err(|d| d.to_string())?;
    let mut out = Vec::new();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        let name = file.display().to_string();
        let Ok(docs) = argon_crds::source::parse(&name, &text) else {
            continue;
        };
        for doc in docs {
            let v = &doc.value;
            if v.get("apiVersion").and_then(|a| a.as_str()) != Some("v1")
                || v.get("kind").and_then(|k| k.as_str()) != Some("ConfigMap")
            {
                continue;
            }
            let cm: ConfigMap = serde_json::from_value(v.clone()).map_err(|e| format!("{name}: ConfigMap: {e}"))?;
            out.push(cm);
        }
    }
    Ok(out)
}

/// The repository a workflow stores its artifacts in, and how it was chosen.
#[derive(Clone, Debug, Default)]
pub struct Chosen {
    /// The repository; `None` is the local one under the state dir.
    pub repository: Option<ArtifactRepository>,
    /// What `status.artifactRepositoryRef` records (Argo's shape).
    pub status: Option<serde_json::Value>,
}

impl Chosen {
    /// The S3 repository, if that is where artifacts go.
    pub fn s3(&self) -> Option<&S3ArtifactRepository> {
        self.repository.as_ref().and_then(|r| r.s3.as_ref())
    }

    /// Whether step logs are archived by default.
    pub fn archive_logs(&self) -> bool {
        self.repository.as_ref().and_then(|r| r.archive_logs).unwrap_or(false)
    }
}

/// The repositories the engine knows: its default, and the ConfigMaps given
/// with the manifests.
#[derive(Clone, Debug, Default)]
pub struct Repositories {
    /// The engine's `artifactRepository`.
    pub default: Option<ArtifactRepository>,
    /// ConfigMaps that may hold repositories.
    pub config_maps: Vec<ConfigMap>,
    /// The namespace of ConfigMaps that name none.
    pub default_namespace: String,
}

impl Repositories {
    fn config_map(&self, namespace: &str, name: &str) -> Option<&ConfigMap> {
        self.config_maps.iter().find(|cm| {
            cm.metadata.name.as_deref() == Some(name)
                && cm.metadata.namespace.as_deref().unwrap_or(&self.default_namespace) == namespace
        })
    }

    /// The engine's default: its `artifactRepository`, else the one of a
    /// `workflow-controller-configmap` among the manifests.
    fn engine_default(&self) -> Result<Option<ArtifactRepository>, String> {
        if self.default.is_some() {
            return Ok(self.default.clone());
        }
        match self
            .config_maps
            .iter()
            .find(|cm| cm.metadata.name.as_deref() == Some(CONTROLLER_CONFIG_MAP))
        {
            Some(cm) => controller_config_map(cm).map_err(|e| format!("ConfigMap {CONTROLLER_CONFIG_MAP}: {e}")),
            None => Ok(None),
        }
    }

    /// The repository of a workflow in `namespace` with `spec.artifactRepositoryRef` `r`,
    /// chosen as Argo chooses: the ref; else the namespace's
    /// `artifact-repositories` ConfigMap's default key; else the engine's
    /// default; else the local repository.
    pub fn choose(&self, namespace: &str, r: Option<&ArtifactRepositoryRef>) -> Result<Chosen, String> {
        let explicit = r.is_some();
        let cm_name = r
            .and_then(|r| r.config_map.clone())
            .unwrap_or_else(|| DEFAULT_CONFIG_MAP.to_string());
        let Some(cm) = self.config_map(namespace, &cm_name) else {
            if explicit {
                return Err(format!(
                    "spec.artifactRepositoryRef: there is no ConfigMap '{cm_name}' in namespace '{namespace}' among \
                     the manifests given to argon run or argon server"
                ));
            }
            return Ok(Chosen {
                repository: self.engine_default()?,
                status: Some(serde_json::json!({"default": true})),
            });
        };
        let annotated = cm
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(DEFAULT_KEY_ANNOTATION))
            .cloned();
        let key = match (r.and_then(|r| r.key.clone()), annotated) {
            (Some(k), _) | (None, Some(k)) => k,
            (None, None) if explicit => {
                return Err(format!(
                    "spec.artifactRepositoryRef names no key, and ConfigMap '{cm_name}' has no \
                     {DEFAULT_KEY_ANNOTATION} annotation to name its default"
                ));
            }
            (None, None) => {
                return Ok(Chosen {
                    repository: self.engine_default()?,
                    status: Some(serde_json::json!({"default": true})),
                });
            }
        };
        let data: BTreeMap<String, String> = cm.data.clone().unwrap_or_default();
        let Some(text) = data.get(&key) else {
            let known = data.keys().cloned().collect::<Vec<_>>().join(", ");
            return Err(format!(
                "ConfigMap '{cm_name}' has no key '{key}' (it has: {})",
                if known.is_empty() { "none" } else { &known }
            ));
        };
        let repository = parse(text).map_err(|e| format!("ConfigMap '{cm_name}' key '{key}': {e}"))?;
        let status = serde_json::json!({
            "configMap": cm_name,
            "key": key,
            "namespace": namespace,
            "artifactRepository": repository,
        });
        Ok(Chosen {
            repository: Some(repository),
            status: Some(status),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(name: &str, annotation: Option<&str>, data: &[(&str, &str)]) -> ConfigMap {
        let mut cm = ConfigMap::default();
        cm.metadata.name = Some(name.into());
        if let Some(a) = annotation {
            cm.metadata.annotations = Some([(DEFAULT_KEY_ANNOTATION.to_string(), a.to_string())].into());
        }
        cm.data = Some(data.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        cm
    }

    const MINIO: &str =
        "s3:\n  bucket: my-bucket\n  endpoint: minio:9000\n  insecure: true\n  keyFormat: \"a/{{workflow.name}}\"\n";

    #[test]
    fn a_workflow_gets_the_ref_then_the_annotated_default_then_the_engine_default() {
        let repos = Repositories {
            default: None,
            config_maps: vec![cm(
                DEFAULT_CONFIG_MAP,
                Some("minio"),
                &[("minio", MINIO), ("other", "s3: {bucket: b2}")],
            )],
            default_namespace: "default".into(),
        };
        let chosen = repos.choose("default", None).unwrap();
        assert_eq!(chosen.s3().unwrap().bucket.as_deref(), Some("my-bucket"));
        assert_eq!(chosen.s3().unwrap().key_format(), "a/{{workflow.name}}");
        let r = ArtifactRepositoryRef {
            config_map: None,
            key: Some("other".into()),
        };
        assert_eq!(
            repos
                .choose("default", Some(&r))
                .unwrap()
                .s3()
                .unwrap()
                .bucket
                .as_deref(),
            Some("b2")
        );
        // Another namespace has no such ConfigMap: the local repository.
        assert!(repos.choose("elsewhere", None).unwrap().repository.is_none());
    }

    #[test]
    fn bad_refs_and_repositories_are_clear_errors() {
        let repos = Repositories {
            default: None,
            config_maps: vec![cm(
                DEFAULT_CONFIG_MAP,
                None,
                &[("gcs", "gcs: {bucket: x}"), ("typo", "s3: {bucket: b, endpont: x}")],
            )],
            default_namespace: "default".into(),
        };
        let missing = ArtifactRepositoryRef {
            config_map: Some("nope".into()),
            key: None,
        };
        let e = repos.choose("default", Some(&missing)).unwrap_err();
        assert!(e.contains("no ConfigMap 'nope'"), "{e}");
        let no_key = ArtifactRepositoryRef::default();
        let e = repos.choose("default", Some(&no_key)).unwrap_err();
        assert!(e.contains("names no key"), "{e}");
        let unknown = ArtifactRepositoryRef {
            config_map: None,
            key: Some("zzz".into()),
        };
        let e = repos.choose("default", Some(&unknown)).unwrap_err();
        assert!(e.contains("no key 'zzz'") && e.contains("gcs, typo"), "{e}");
        let gcs = ArtifactRepositoryRef {
            config_map: None,
            key: Some("gcs".into()),
        };
        let e = repos.choose("default", Some(&gcs)).unwrap_err();
        assert!(
            e.contains("GCS (gcs) artifact repositories are not supported yet"),
            "{e}"
        );
        let typo = ArtifactRepositoryRef {
            config_map: None,
            key: Some("typo".into()),
        };
        let e = repos.choose("default", Some(&typo)).unwrap_err();
        assert!(e.contains("endpont"), "{e}");
        assert!(parse("s3: {endpoint: x}").unwrap_err().contains("no bucket"));
    }

    #[test]
    fn the_engine_config_is_a_plain_file_or_the_controller_config_map() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("config.yaml");
        std::fs::write(
            &plain,
            format!("artifactRepository:\n  {}", MINIO.replace('\n', "\n  ")),
        )
        .unwrap();
        let repo = engine_config(&plain).unwrap().unwrap();
        assert_eq!(repo.s3.unwrap().endpoint.as_deref(), Some("minio:9000"));
        let cm = dir.path().join("cm.yaml");
        std::fs::write(
            &cm,
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: workflow-controller-configmap\ndata:\n  \
             artifactRepository: |\n    s3:\n      bucket: from-cm\n",
        )
        .unwrap();
        assert_eq!(
            engine_config(&cm).unwrap().unwrap().s3.unwrap().bucket.as_deref(),
            Some("from-cm")
        );
        let maps = config_maps(&[cm]).unwrap();
        let repos = Repositories {
            config_maps: maps,
            default_namespace: "default".into(),
            ..Default::default()
        };
        assert_eq!(
            repos.choose("default", None).unwrap().s3().unwrap().bucket.as_deref(),
            Some("from-cm")
        );
    }
}
