//! Secrets outside a cluster: a `{name, key}` secret selector resolves to the
//! file `DIR/name/key`, the layout of a Kubernetes secret mounted as a
//! volume, so one manifest works on a laptop and in a pod.

use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::SecretKeySelector;

/// Why a secret could not be read.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error(
        "secret '{name}' key '{key}' is needed but no secrets directory was given (use --secrets-dir DIR, with the value in DIR/{name}/{key})"
    )]
    NoDirectory { name: String, key: String },
    #[error("secret '{name}' key '{key}' not found: {path} does not exist")]
    Missing { name: String, key: String, path: PathBuf },
    #[error("secret '{name}' key '{key}': cannot read {path}: {source}")]
    Unreadable {
        name: String,
        key: String,
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where secrets are read from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Secrets {
    dir: Option<PathBuf>,
}

impl Secrets {
    /// Secrets under `dir` (`None`: no secrets available; any lookup fails clearly).
    pub fn new(dir: Option<PathBuf>) -> Self {
        Secrets { dir }
    }

    /// The directory secrets are read from, if any.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    /// The value of the secret key as bytes. An optional selector whose
    /// secret is absent gives `None`.
    pub fn bytes(&self, selector: &SecretKeySelector) -> Result<Option<Vec<u8>>, SecretError> {
        let name = selector.name.clone();
        let key = selector.key.clone();
        let optional = selector.optional.unwrap_or(false);
        let Some(dir) = &self.dir else {
            return if optional {
                Ok(None)
            } else {
                Err(SecretError::NoDirectory { name, key })
            };
        };
        let path = dir.join(&name).join(&key);
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if optional {
                    Ok(None)
                } else {
                    Err(SecretError::Missing { name, key, path })
                }
            }
            Err(source) => Err(SecretError::Unreadable {
                name,
                key,
                path,
                source,
            }),
        }
    }

    /// The file holding the secret key, for clients that read files
    /// themselves (TLS certificates, NATS credentials). Fails as
    /// [`Secrets::bytes`] does when the file is not there; an optional
    /// selector whose secret is absent gives `None`.
    pub fn path(&self, selector: &SecretKeySelector) -> Result<Option<PathBuf>, SecretError> {
        let found = self.bytes(selector)?;
        Ok(found
            .and(self.dir.as_ref())
            .map(|dir| dir.join(&selector.name).join(&selector.key)))
    }

    /// The value of the secret key as text, with one trailing newline removed
    /// (files written with `echo` end with one; Kubernetes secrets do not).
    pub fn string(&self, selector: &SecretKeySelector) -> Result<Option<String>, SecretError> {
        Ok(self.bytes(selector)?.map(|b| {
            let mut s = String::from_utf8_lossy(&b).into_owned();
            if s.ends_with('\n') {
                s.pop();
                if s.ends_with('\r') {
                    s.pop();
                }
            }
            s
        }))
    }

    /// Like [`Secrets::string`], for a selector that must be present.
    pub fn require(&self, selector: &SecretKeySelector) -> Result<String, SecretError> {
        self.string(selector)?.ok_or_else(|| SecretError::Missing {
            name: selector.name.clone(),
            key: selector.key.clone(),
            path: self
                .dir
                .clone()
                .unwrap_or_default()
                .join(&selector.name)
                .join(&selector.key),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sel(name: &str, key: &str, optional: Option<bool>) -> SecretKeySelector {
        SecretKeySelector {
            name: name.into(),
            key: key.into(),
            optional,
        }
    }

    #[test]
    fn reads_mounted_layout_and_reports_missing() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("github")).unwrap();
        std::fs::write(dir.path().join("github/secret"), "s3cret\n").unwrap();
        let secrets = Secrets::new(Some(dir.path().to_path_buf()));
        assert_eq!(secrets.require(&sel("github", "secret", None)).unwrap(), "s3cret");
        let e = secrets.require(&sel("github", "token", None)).unwrap_err();
        assert!(
            e.to_string().starts_with("secret 'github' key 'token' not found"),
            "{e}"
        );
        assert_eq!(secrets.string(&sel("github", "token", Some(true))).unwrap(), None);
        assert_eq!(
            secrets.path(&sel("github", "secret", None)).unwrap(),
            Some(dir.path().join("github/secret"))
        );
        assert!(secrets.path(&sel("github", "token", None)).is_err());
        assert_eq!(secrets.path(&sel("github", "token", Some(true))).unwrap(), None);
        let e = Secrets::new(None).require(&sel("a", "b", None)).unwrap_err();
        assert!(e.to_string().contains("--secrets-dir"), "{e}");
    }
}
