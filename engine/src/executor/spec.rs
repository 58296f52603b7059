//! From a template's Kubernetes container (variables already substituted) to
//! the [`ContainerSpec`] every backend runs: the environment resolved
//! (`value`, `secretKeyRef`, `configMapKeyRef`, `fieldRef`, `envFrom`), the
//! resource limits parsed, the security context merged with the pod's.

use argon_crds::secret::Secrets;
use k8s_openapi::api::core::v1::{Container, PodSecurityContext, SecretKeySelector};

use super::{ContainerSpec, StepOwner};

/// The spec of `container`, named `name`, in the pod of `owner`.
pub fn container_spec(
    name: &str,
    container: &Container,
    pod_security: Option<&PodSecurityContext>,
    secrets: &Secrets,
    owner: &StepOwner,
) -> Result<ContainerSpec, String> {
    let mut env = Vec::new();
    for from in container.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let (source, optional) = match (&from.secret_ref, &from.config_map_ref) {
            (Some(s), _) => (s.name.clone(), s.optional.unwrap_or(false)),
            (None, Some(c)) => (c.name.clone(), c.optional.unwrap_or(false)),
            (None, None) => continue,
        };
        for (key, value) in directory_values(secrets, &source, optional)? {
            env.push((format!("{prefix}{key}"), value));
        }
    }
    for e in container.env.iter().flatten() {
        let value = match (&e.value, &e.value_from) {
            (Some(v), _) => v.clone(),
            (None, Some(from)) => {
                let selector = if let Some(sel) = &from.secret_key_ref {
                    Some(sel.clone())
                } else {
                    from.config_map_key_ref.as_ref().map(|c| SecretKeySelector {
                        name: c.name.clone(),
                        key: c.key.clone(),
                        optional: c.optional,
                    })
                };
                if let Some(sel) = selector {
                    match secrets.string(&sel) {
                        Ok(Some(v)) => v,
                        Ok(None) => continue,
                        Err(err) => return Err(format!("env {}: {err}", e.name)),
                    }
                } else if let Some(f) = &from.field_ref {
                    match f.field_path.as_str() {
                        "metadata.name" => owner.node_id.clone(),
                        "metadata.namespace" => owner.namespace.clone(),
                        "metadata.uid" => owner.workflow_uid.clone(),
                        other => {
                            return Err(format!(
                                "env {}: fieldRef {other} is not available outside Kubernetes",
                                e.name
                            ));
                        }
                    }
                } else {
                    return Err(format!(
                        "env {}: only value, secretKeyRef, configMapKeyRef and fieldRef are supported outside Kubernetes",
                        e.name
                    ));
                }
            }
            (None, None) => String::new(),
        };
        env.push((e.name.clone(), value));
    }
    let limits = container.resources.as_ref().and_then(|r| r.limits.as_ref());
    let memory_limit = limits
        .and_then(|l| l.get("memory"))
        .map(|q| parse_bytes(&q.0).map_err(|e| format!("resources.limits.memory: {e}")))
        .transpose()?;
    let cpu_limit = limits
        .and_then(|l| l.get("cpu"))
        .map(|q| parse_cpu(&q.0).map_err(|e| format!("resources.limits.cpu: {e}")))
        .transpose()?;
    let sc = container.security_context.as_ref();
    let run_as_user = sc
        .and_then(|s| s.run_as_user)
        .or_else(|| pod_security.and_then(|s| s.run_as_user));
    let run_as_group = sc
        .and_then(|s| s.run_as_group)
        .or_else(|| pod_security.and_then(|s| s.run_as_group));
    let run_as_non_root = sc
        .and_then(|s| s.run_as_non_root)
        .or_else(|| pod_security.and_then(|s| s.run_as_non_root))
        .unwrap_or(false);
    if run_as_non_root && run_as_user == Some(0) {
        return Err(format!(
            "container '{name}' has runAsNonRoot set and runAsUser 0: it would run as root"
        ));
    }
    Ok(ContainerSpec {
        name: name.to_string(),
        image: container.image.clone().filter(|i| !i.is_empty()),
        pull_policy: container.image_pull_policy.clone(),
        command: container.command.clone().unwrap_or_default(),
        args: container.args.clone().unwrap_or_default(),
        env,
        working_dir: container.working_dir.clone().filter(|w| !w.is_empty()),
        memory_limit,
        cpu_limit,
        run_as_user,
        run_as_group,
        run_as_non_root,
        read_only_root: sc.and_then(|s| s.read_only_root_filesystem).unwrap_or(false),
        volume_mounts: container.volume_mounts.clone().unwrap_or_default(),
        readiness_probe: container.readiness_probe.clone(),
    })
}

/// The keys and values of a secret or config map: the files of its folder
/// under the secrets dir.
fn directory_values(secrets: &Secrets, name: &str, optional: bool) -> Result<Vec<(String, String)>, String> {
    let Some(dir) = secrets.dir().map(|d| d.join(name)) else {
        return if optional {
            Ok(Vec::new())
        } else {
            Err(format!(
                "envFrom '{name}' needs a secrets directory (--secrets-dir DIR, with DIR/{name}/KEY files)"
            ))
        };
    };
    let list = match std::fs::read_dir(&dir) {
        Ok(l) => l,
        Err(_) if optional => return Ok(Vec::new()),
        Err(e) => return Err(format!("envFrom '{name}': cannot read {}: {e}", dir.display())),
    };
    let mut out = Vec::new();
    for e in list.flatten() {
        let key = e.file_name().to_string_lossy().into_owned();
        if key.starts_with('.') || !e.path().is_file() {
            continue;
        }
        let mut value =
            std::fs::read_to_string(e.path()).map_err(|err| format!("envFrom '{name}' key {key}: {err}"))?;
        if value.ends_with('\n') {
            value.pop();
        }
        out.push((key, value));
    }
    out.sort();
    Ok(out)
}

/// Bytes of a Kubernetes quantity (`64Mi`, `1G`, `512000`, `1.5Gi`).
pub fn parse_bytes(q: &str) -> Result<u64, String> {
    let q = q.trim();
    let split = q.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(q.len());
    let (num, unit) = q.split_at(split);
    let n: f64 = num.parse().map_err(|_| format!("'{q}' is not a quantity"))?;
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0f64.powi(4),
        "m" => 1e-3,
        _ => return Err(format!("'{q}': unknown unit '{unit}'")),
    };
    Ok((n * mult).round() as u64)
}

/// Billionths of a CPU of a Kubernetes CPU quantity (`500m`, `2`, `0.25`).
pub fn parse_cpu(q: &str) -> Result<i64, String> {
    let q = q.trim();
    let (num, scale) = match q.strip_suffix('m') {
        Some(n) => (n, 1e6),
        None => (q, 1e9),
    };
    let n: f64 = num.parse().map_err(|_| format!("'{q}' is not a CPU quantity"))?;
    if n <= 0.0 {
        return Err(format!("'{q}' must be more than 0"));
    }
    Ok((n * scale).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_parse_like_kubernetes() {
        assert_eq!(parse_bytes("64Mi"), Ok(64 << 20));
        assert_eq!(parse_bytes("1G"), Ok(1_000_000_000));
        assert_eq!(parse_bytes("1.5Gi"), Ok(3 << 29));
        assert_eq!(parse_bytes("512"), Ok(512));
        assert!(parse_bytes("12XB").is_err());
        assert_eq!(parse_cpu("500m"), Ok(500_000_000));
        assert_eq!(parse_cpu("2"), Ok(2_000_000_000));
        assert!(parse_cpu("0").is_err());
    }
}
