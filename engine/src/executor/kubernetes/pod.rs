//! The Pod of one step: the template's containers and pod settings as
//! Kubernetes runs them, with Argon's emissary around the main container
//! (see [`super::emissary`]).
//!
//! - `init`, the first init container, runs the Argon image's `argon
//!   emissary init`: it copies `argon` into the shared `argon-var` emptyDir
//!   and fetches the step's inputs there. It runs as a non-root user with a
//!   read-only root and no capabilities.
//! - The template's init containers follow, then its sidecars as native
//!   sidecars (init containers with `restartPolicy: Always`, Kubernetes
//!   1.29 and later), which the kubelet stops once the main container ends.
//! - `main` runs `/var/run/argon/argon emissary run -- COMMAND... ARGS...`;
//!   input artifacts and the script are mounted from `argon-var` by subPath
//!   at the paths the template names.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, EnvVar, Pod, PodSpec, SecurityContext, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::PodParts;
use super::emissary::DIR;
use crate::executor::StepProcess;
use crate::executor::container::{WORKFLOW_LABEL, WORKFLOW_NAME_LABEL};

/// The label every step pod has, which the engine watches.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Its value.
pub const MANAGER: &str = "argon-engine";
/// Argo's label of a pod's workflow (its name).
pub const ARGO_WORKFLOW_LABEL: &str = "workflows.argoproj.io/workflow";
/// The annotation holding the node's id (too long for a label value).
pub const NODE_ANNOTATION: &str = "workflows.argoproj.io/node-id";
/// The annotation holding the workflow's `podGC` strategy, read when the
/// workflow ends (also by an engine that restarted in between).
pub const POD_GC_ANNOTATION: &str = "argon.pod-gc";

/// Where a script's source is mounted, as Argo does.
pub const SCRIPT_PATH: &str = "/argo/staging/script";

/// The shared emptyDir's name.
const SHARED: &str = "argon-var";

/// What the pod needs beyond the step.
pub struct PodConfig<'a> {
    pub namespace: &'a str,
    /// The Argon image of the `init` container.
    pub image: &'a str,
    /// The step's transfer URL on the engine's API.
    pub step_url: &'a str,
    pub token: &'a str,
    pub allow_host_path: bool,
}

/// The pod's name: the workflow's name and a hash of the node id, at most
/// 63 characters (a DNS label, as the pod's hostname must be).
pub fn pod_name(workflow: &str, node_id: &str) -> String {
    let h = crate::executor::node_hash(node_id);
    let mut base: String = workflow.chars().take(53).collect();
    while base.ends_with(['-', '.']) {
        base.pop();
    }
    format!("{base}-{h:08x}")
}

/// The step's pod.
pub fn build(step: &StepProcess, parts: &PodParts, cfg: &PodConfig) -> Result<Pod, String> {
    if !cfg.allow_host_path
        && let Some(v) = step.volumes.iter().find(|v| v.host_path.is_some())
    {
        return Err(format!(
            "volume '{}' is a hostPath: host folders are mounted only with --allow-host-path",
            v.name
        ));
    }
    let mut main = parts.main.clone();
    main.name = "main".to_string();
    let command = main.command.take().unwrap_or_default();
    if command.is_empty() {
        return Err(format!(
            "the main container of image {} has no command: the kubernetes executor runs the command through \
             Argon's emissary and does not look up the image's entrypoint; set `command` to it",
            main.image.as_deref().unwrap_or("(none)")
        ));
    }
    let mut argv = vec![format!("{DIR}/argon"), "emissary".into(), "run".into(), "--".into()];
    argv.extend(command);
    if step.script.is_some() {
        argv.push(SCRIPT_PATH.to_string());
    }
    argv.extend(main.args.take().unwrap_or_default());
    main.command = Some(argv);
    let shared = || VolumeMount {
        name: SHARED.to_string(),
        mount_path: DIR.to_string(),
        ..Default::default()
    };
    let mut mounts = vec![shared()];
    for (i, (_, path)) in step.mounts.iter().enumerate() {
        mounts.push(VolumeMount {
            name: SHARED.to_string(),
            mount_path: path.clone(),
            sub_path: Some(format!("inputs/{i}")),
            ..Default::default()
        });
    }
    if step.script.is_some() {
        mounts.push(VolumeMount {
            name: SHARED.to_string(),
            mount_path: SCRIPT_PATH.to_string(),
            sub_path: Some("script".to_string()),
            read_only: Some(true),
            ..Default::default()
        });
    }
    main.volume_mounts.get_or_insert_with(Vec::new).extend(mounts);
    let outputs = serde_json::to_string(&step.outputs).map_err(|e| e.to_string())?;
    let env = |extra: &[(&str, &str)]| -> Vec<EnvVar> {
        [("ARGON_STEP_URL", cfg.step_url), ("ARGON_STEP_TOKEN", cfg.token)]
            .iter()
            .chain(extra)
            .map(|(k, v)| EnvVar {
                name: k.to_string(),
                value: Some(v.to_string()),
                ..Default::default()
            })
            .collect()
    };
    main.env
        .get_or_insert_with(Vec::new)
        .extend(env(&[("ARGON_OUTPUTS", &outputs)]));
    let init = Container {
        name: "init".to_string(),
        image: Some(cfg.image.to_string()),
        image_pull_policy: Some("IfNotPresent".to_string()),
        command: Some(vec!["argon".into(), "emissary".into(), "init".into()]),
        env: Some(env(&[])),
        volume_mounts: Some(vec![shared()]),
        security_context: Some(SecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(65532),
            read_only_root_filesystem: Some(true),
            allow_privilege_escalation: Some(false),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_string()]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        termination_message_policy: Some("FallbackToLogsOnError".to_string()),
        ..Default::default()
    };
    let mut init_containers = vec![init];
    init_containers.extend(parts.init_containers.iter().cloned());
    init_containers.extend(parts.sidecars.iter().cloned().map(|mut c| {
        c.restart_policy = Some("Always".to_string());
        c
    }));
    let mut volumes: Vec<Volume> = step.volumes.clone();
    volumes.push(Volume {
        name: SHARED.to_string(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Default::default()
    });
    let owner = &step.owner;
    let mut labels: BTreeMap<String, String> = parts.labels.clone();
    labels.insert(MANAGED_BY.to_string(), MANAGER.to_string());
    labels.insert(ARGO_WORKFLOW_LABEL.to_string(), label_value(&owner.workflow_name));
    labels.insert(WORKFLOW_NAME_LABEL.to_string(), label_value(&owner.workflow_name));
    labels.insert(WORKFLOW_LABEL.to_string(), label_value(&owner.workflow_uid));
    let mut annotations = parts.annotations.clone();
    annotations.insert(NODE_ANNOTATION.to_string(), owner.node_id.clone());
    if let Some(strategy) = parts.pod_gc.as_ref().and_then(|g| g.strategy) {
        annotations.insert(POD_GC_ANNOTATION.to_string(), format!("{strategy:?}"));
    }
    let spec = PodSpec {
        restart_policy: Some("Never".to_string()),
        active_deadline_seconds: step.timeout.map(|t| t.as_secs_f64().ceil().max(1.0) as i64),
        init_containers: Some(init_containers),
        containers: vec![main],
        volumes: Some(volumes),
        host_network: step.host_network.then_some(true),
        ..parts.spec.clone()
    };
    Ok(Pod {
        metadata: ObjectMeta {
            name: Some(pod_name(&owner.workflow_name, &owner.node_id)),
            namespace: Some(cfg.namespace.to_string()),
            labels: Some(labels),
            annotations: Some(annotations),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    })
}

/// A label value: at most 63 characters of `[A-Za-z0-9._-]`, starting and
/// ending with an alphanumeric one.
fn label_value(text: &str) -> String {
    let mut v: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .take(63)
        .collect();
    while v.ends_with(|c: char| !c.is_ascii_alphanumeric()) {
        v.pop();
    }
    v.trim_start_matches(|c: char| !c.is_ascii_alphanumeric()).to_string()
}
