//! A pod's volumes as the runtime mounts them: `emptyDir` as a named
//! volume (or tmpfs for `medium: Memory`), `secret` and `configMap` as
//! read-only binds of their folder under the secrets dir, `hostPath` only
//! with `--allow-host-path`; `subPath` on the bind mounts.

use std::path::Path;

use bollard::models::{Mount, MountTmpfsOptions, MountType};
use k8s_openapi::api::core::v1::Volume;

use super::{ContainerBackend, volume_name};
use crate::executor::{ContainerSpec, StepOwner, relative};

impl ContainerBackend {
    /// The mounts of `spec` from the pod's volumes.
    pub(super) fn mounts(
        &self,
        spec: &ContainerSpec,
        volumes: &[Volume],
        owner: &StepOwner,
    ) -> Result<Vec<Mount>, String> {
        let mut out = Vec::new();
        for m in &spec.volume_mounts {
            let Some(v) = volumes.iter().find(|v| v.name == m.name) else {
                return Err(format!(
                    "container '{}' mounts volume '{}', which the template does not declare",
                    spec.name, m.name
                ));
            };
            let read_only = m.read_only.unwrap_or(false);
            let mut mount = Mount {
                target: Some(m.mount_path.clone()),
                read_only: Some(read_only),
                ..Default::default()
            };
            if let Some(e) = &v.empty_dir {
                if e.medium.as_deref() == Some("Memory") {
                    mount.typ = Some(MountType::TMPFS);
                    mount.tmpfs_options = Some(MountTmpfsOptions {
                        size_bytes: e
                            .size_limit
                            .as_ref()
                            .and_then(|q| crate::executor::spec::parse_bytes(&q.0).ok())
                            .map(|b| b as i64),
                        ..Default::default()
                    });
                } else {
                    mount.typ = Some(MountType::VOLUME);
                    mount.source = Some(volume_name(owner, &v.name));
                }
            } else if let Some(s) = &v.secret {
                let name = s.secret_name.clone().unwrap_or_default();
                mount.typ = Some(MountType::BIND);
                mount.source = Some(self.secret_dir(&name, "secret")?);
                mount.read_only = Some(true);
            } else if let Some(c) = &v.config_map {
                mount.typ = Some(MountType::BIND);
                mount.source = Some(self.secret_dir(&c.name, "configMap")?);
                mount.read_only = Some(true);
            } else if let Some(h) = &v.host_path {
                if !self.allow_host_path {
                    return Err(format!(
                        "volume '{}' is a hostPath ({}): host folders are only mounted with --allow-host-path",
                        v.name, h.path
                    ));
                }
                mount.typ = Some(MountType::BIND);
                mount.source = Some(h.path.clone());
            } else {
                return Err(format!(
                    "volume '{}': only emptyDir, secret, configMap and hostPath volumes are supported outside \
                     Kubernetes",
                    v.name
                ));
            }
            if let Some(sub) = m.sub_path.as_deref().filter(|s| !s.is_empty()) {
                match mount.typ {
                    Some(MountType::BIND) => {
                        let source = Path::new(mount.source.as_deref().unwrap_or("/")).join(relative(sub));
                        mount.source = Some(source.display().to_string());
                    }
                    _ => {
                        return Err(format!(
                            "volume mount '{}': subPath is only supported on secret, configMap and hostPath volumes",
                            m.name
                        ));
                    }
                }
            }
            out.push(mount);
        }
        Ok(out)
    }

    fn secret_dir(&self, name: &str, what: &str) -> Result<String, String> {
        let Some(dir) = self.secrets.dir() else {
            return Err(format!(
                "{what} volume '{name}' needs a secrets directory (--secrets-dir DIR, with DIR/{name}/KEY files)"
            ));
        };
        let path = dir.join(name);
        if !path.is_dir() {
            return Err(format!("{what} '{name}' not found: {} does not exist", path.display()));
        }
        let path = path.canonicalize().map_err(|e| format!("{what} '{name}': {e}"))?;
        Ok(path.display().to_string())
    }
}
