//! The Kubernetes objects that run a manifest, as pure functions of it: per
//! EventSource a ConfigMap holding the manifest, a Deployment running
//! `argon eventsource run` on it and a Service for its webhook ports; per
//! Sensor a ConfigMap and a Deployment running `argon sensor run`; per
//! EventBus with `jetstream` a NATS JetStream StatefulSet, its configuration
//! and its headless Service (nothing for `jetstreamExotic`).

use std::collections::BTreeMap;

use argon_crds::common::{Container as ContainerSettings, Template};
use argon_crds::eventbus::{BusConfig, EventBus, JetStreamBus, JetStreamConfig};
use argon_crds::eventsource::EventSource;
use argon_crds::sensor::Sensor;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec, DeploymentStrategy, StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EnvVar, EnvVarSource, HTTPGetAction,
    ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, SecretVolumeSource, SecurityContext, Service, ServicePort, ServiceSpec, Volume,
    VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta, OwnerReference};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::{Error, Result, secrets};

/// The label every object the controller makes carries (its watches select on it).
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "argon-controller");
/// The label naming the kind of component: `argon-eventsource`, `argon-sensor`, `argon-eventbus`.
pub const COMPONENT_LABEL: &str = "app.kubernetes.io/name";
/// The label naming the manifest an object belongs to.
pub const INSTANCE_LABEL: &str = "app.kubernetes.io/instance";
/// The pod annotation holding the hash of the mounted configuration: a change rolls the pods.
pub const CONFIG_HASH_ANNOTATION: &str = "argon.io/config-sha256";
/// Where the manifest is mounted in EventSource and Sensor pods.
pub const MANIFEST_DIR: &str = "/etc/argon/manifest";
/// The file, next to the manifest, holding the manifest of its EventBus.
pub const EVENTBUS_FILE: &str = "eventbus.yaml";
/// Where the Secrets a manifest names are mounted (one folder per Secret).
pub const SECRETS_DIR: &str = "/etc/argon/secrets";
/// Where the Secret with the engine server's token is mounted in Sensor pods.
pub const SERVER_TOKEN_DIR: &str = "/etc/argon/server-token";
/// The port of `/metrics` and `/health` in EventSource and Sensor pods.
pub const METRICS_PORT: i32 = 7777;
/// The NATS version of a `jetstream` bus that does not say one.
pub const DEFAULT_NATS_VERSION: &str = "2.10";
/// NATS client, cluster and monitoring ports.
pub const NATS_CLIENT_PORT: i32 = 4222;
const NATS_CLUSTER_PORT: i32 = 6222;
const NATS_MONITOR_PORT: i32 = 8222;
const NATS_CONFIG_DIR: &str = "/etc/nats-config";
const NATS_DATA_DIR: &str = "/data";

/// What the objects depend on besides the manifest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settings {
    /// The image holding the `argon` binary, for EventSource and Sensor pods.
    pub image: String,
    /// Its pull policy, unless a manifest's template says one.
    pub image_pull_policy: Option<String>,
    /// The engine server (`argon server`) sensors submit workflows to.
    pub server_url: Option<String>,
    /// The Secret (key `token`) holding the engine server's Bearer token.
    pub server_token_secret: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            image: concat!("argon:", env!("CARGO_PKG_VERSION")).to_string(),
            image_pull_policy: None,
            server_url: None,
            server_token_secret: None,
        }
    }
}

/// One object the controller applies for a manifest.
#[derive(Clone, Debug, PartialEq)]
pub enum Child {
    ConfigMap(ConfigMap),
    Deployment(Deployment),
    Service(Service),
    StatefulSet(StatefulSet),
}

impl Child {
    /// The object's kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Child::ConfigMap(_) => "ConfigMap",
            Child::Deployment(_) => "Deployment",
            Child::Service(_) => "Service",
            Child::StatefulSet(_) => "StatefulSet",
        }
    }

    /// The object's metadata.
    pub fn meta(&self) -> &ObjectMeta {
        match self {
            Child::ConfigMap(o) => &o.metadata,
            Child::Deployment(o) => &o.metadata,
            Child::Service(o) => &o.metadata,
            Child::StatefulSet(o) => &o.metadata,
        }
    }

    /// The object's name.
    pub fn name(&self) -> &str {
        self.meta().name.as_deref().unwrap_or_default()
    }

    /// The object as YAML, with `apiVersion` and `kind`.
    pub fn to_yaml(&self) -> Result<String> {
        let text = match self {
            Child::ConfigMap(o) => serde_norway::to_string(o),
            Child::Deployment(o) => serde_norway::to_string(o),
            Child::Service(o) => serde_norway::to_string(o),
            Child::StatefulSet(o) => serde_norway::to_string(o),
        };
        text.map_err(|e| Error::Serialize {
            what: format!("{} {}", self.kind(), self.name()),
            message: e.to_string(),
        })
    }
}

/// The names of an EventSource's objects.
pub fn eventsource_names(name: &str) -> (String, String, String) {
    (
        dns_label(name, "eventsource-manifest"),
        dns_label(name, "eventsource"),
        dns_label(name, "eventsource-svc"),
    )
}

/// The names of a Sensor's objects (ConfigMap, Deployment).
pub fn sensor_names(name: &str) -> (String, String) {
    (dns_label(name, "sensor-manifest"), dns_label(name, "sensor"))
}

/// The names of a `jetstream` EventBus's objects (ConfigMap, StatefulSet, Service).
pub fn eventbus_names(name: &str) -> (String, String, String) {
    (
        dns_label(&format!("eventbus-{name}"), "js-config"),
        dns_label(&format!("eventbus-{name}"), "js"),
        dns_label(&format!("eventbus-{name}"), "js-svc"),
    )
}

/// `base-suffix` when it fits in a DNS label (63 characters, what Service
/// names need); else `base` shortened and a hash of it, so that long names stay
/// distinct.
pub fn dns_label(base: &str, suffix: &str) -> String {
    let full = format!("{base}-{suffix}");
    if full.len() <= 63 {
        return full;
    }
    let hash = hex(&Sha256::digest(base.as_bytes()))[..8].to_string();
    let keep = 63 - suffix.len() - hash.len() - 2;
    let mut cut = base.len().min(keep);
    while !base.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}-{hash}-{suffix}", base[..cut].trim_end_matches(['-', '.']))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The EventBus an EventSource publishes to (`default` unless it says).
pub fn eventsource_bus(es: &EventSource) -> &str {
    match es.spec.event_bus_name.as_deref() {
        Some(name) if !name.is_empty() => name,
        _ => "default",
    }
}

/// The URL clients of an EventBus connect to.
pub fn bus_url(bus: &EventBus) -> Result<String> {
    let name = bus.name_any();
    if bus.spec.jetstream.is_some() {
        let namespace = bus.namespace().unwrap_or_else(|| "default".to_string());
        let (_, _, service) = eventbus_names(&name);
        return Ok(format!("nats://{service}.{namespace}.svc:{NATS_CLIENT_PORT}"));
    }
    if let Some(exotic) = &bus.spec.jetstream_exotic {
        return match exotic.url.as_deref() {
            Some(url) if !url.is_empty() => Ok(url.to_string()),
            _ => Err(Error::UnsupportedBus {
                name,
                reason: "jetstreamExotic needs a url, e.g. nats://nats.example:4222".into(),
            }),
        };
    }
    let reason = if bus.spec.nats.is_some() {
        "NATS Streaming (spec.nats) is not supported by Argon; use spec.jetstream or spec.jetstreamExotic"
    } else if bus.spec.kafka.is_some() {
        "Kafka (spec.kafka) is not supported by Argon; use spec.jetstream or spec.jetstreamExotic"
    } else {
        "the spec sets no bus; set spec.jetstream or spec.jetstreamExotic"
    };
    Err(Error::UnsupportedBus {
        name,
        reason: reason.into(),
    })
}

/// The resolved configuration an EventBus's status reports.
pub fn bus_config(bus: &EventBus) -> Result<BusConfig> {
    let url = bus_url(bus)?;
    // bus_url accepted only jetstream and jetstreamExotic.
    let jetstream = match &bus.spec.jetstream {
        Some(js) => JetStreamConfig {
            url: Some(url),
            stream_config: js.stream_config.clone(),
            ..JetStreamConfig::default()
        },
        None => bus.spec.jetstream_exotic.clone().unwrap_or_default(),
    };
    Ok(BusConfig {
        jetstream: Some(jetstream),
        ..BusConfig::default()
    })
}

/// The labels of the objects of one manifest.
fn labels(component: &str, instance: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.0.to_string(), MANAGED_BY.1.to_string()),
        (COMPONENT_LABEL.to_string(), component.to_string()),
        (INSTANCE_LABEL.to_string(), instance.to_string()),
    ])
}

/// The labels a workload's selector matches (a subset of [`labels`]).
fn selector_labels(component: &str, instance: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (COMPONENT_LABEL.to_string(), component.to_string()),
        (INSTANCE_LABEL.to_string(), instance.to_string()),
    ])
}

/// The owner of the objects of one manifest.
struct Owner {
    name: String,
    namespace: String,
    component: &'static str,
    owner_ref: Option<OwnerReference>,
}

impl Owner {
    fn of<K: Resource<DynamicType = ()>>(obj: &K, component: &'static str) -> Result<Self> {
        let name = obj
            .meta()
            .name
            .clone()
            .ok_or(Error::NoName { kind: kind_name::<K>() })?;
        Ok(Owner {
            namespace: obj.meta().namespace.clone().unwrap_or_else(|| "default".to_string()),
            owner_ref: obj.controller_owner_ref(&()),
            name,
            component,
        })
    }

    fn meta(&self, name: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_string()),
            namespace: Some(self.namespace.clone()),
            labels: Some(labels(self.component, &self.name)),
            owner_references: self.owner_ref.clone().map(|o| vec![o]),
            ..ObjectMeta::default()
        }
    }
}

fn kind_name<K: Resource<DynamicType = ()>>() -> &'static str {
    match K::kind(&()).as_ref() {
        "EventSource" => "EventSource",
        "Sensor" => "Sensor",
        "EventBus" => "EventBus",
        _ => "object",
    }
}

/// The manifest as its pod reads it: name, namespace, labels, annotations
/// and spec, without the status and the server's bookkeeping.
fn manifest_yaml<K>(obj: &K) -> Result<String>
where
    K: Resource<DynamicType = ()> + Clone + Serialize,
{
    let mut copy = obj.clone();
    let meta = copy.meta_mut();
    let mut annotations = meta.annotations.take().unwrap_or_default();
    annotations.remove("kubectl.kubernetes.io/last-applied-configuration");
    *meta = ObjectMeta {
        name: meta.name.take(),
        namespace: meta.namespace.take(),
        labels: meta.labels.take().filter(|l| !l.is_empty()),
        annotations: (!annotations.is_empty()).then_some(annotations),
        ..ObjectMeta::default()
    };
    let mut value = serde_json::to_value(&copy).map_err(|e| Error::Serialize {
        what: format!("{} {}", K::kind(&()), copy.meta().name.as_deref().unwrap_or_default()),
        message: e.to_string(),
    })?;
    if let Some(fields) = value.as_object_mut() {
        fields.remove("status");
    }
    serde_norway::to_string(&value).map_err(|e| Error::Serialize {
        what: format!("{} {}", K::kind(&()), copy.meta().name.as_deref().unwrap_or_default()),
        message: e.to_string(),
    })
}

/// The Secrets a spec and its EventBus name, each as a volume and its
/// mount under [`SECRETS_DIR`] (one mount per Secret, whoever names it).
fn secret_volumes(spec: &impl Serialize, bus: &EventBus) -> (Vec<Volume>, Vec<VolumeMount>) {
    let value = serde_json::to_value(spec).unwrap_or_default();
    let mut wanted = secrets::referenced(&value);
    for (secret, optional) in bus_secrets(bus) {
        let all_optional = wanted.entry(secret).or_insert(true);
        *all_optional &= optional;
    }
    wanted
        .into_iter()
        .map(|(secret, optional)| {
            let volume = dns_label("secret", &secret.replace('.', "-"));
            (
                Volume {
                    name: volume.clone(),
                    secret: Some(SecretVolumeSource {
                        secret_name: Some(secret.clone()),
                        optional: optional.then_some(true),
                        ..SecretVolumeSource::default()
                    }),
                    ..Volume::default()
                },
                VolumeMount {
                    name: volume,
                    mount_path: format!("{SECRETS_DIR}/{secret}"),
                    read_only: Some(true),
                    ..VolumeMount::default()
                },
            )
        })
        .unzip()
}

/// The Secrets the clients of an EventBus read: `accessSecret` and `tls` of
/// `jetstreamExotic` (a `jetstream` bus the controller deploys has none).
pub fn bus_secrets(bus: &EventBus) -> BTreeMap<String, bool> {
    // With both set, `jetstream` is the bus (see bus_url).
    match bus
        .spec
        .jetstream_exotic
        .as_ref()
        .filter(|_| bus.spec.jetstream.is_none())
    {
        Some(exotic) => secrets::referenced(&serde_json::to_value(exotic).unwrap_or_default()),
        None => BTreeMap::new(),
    }
}

/// What an EventSource or Sensor pod is told of its EventBus: the URL, and
/// the EventBus manifest (written next to its own) from which `argon`
/// takes the stream settings, credentials and TLS; the Secrets these name
/// are mounted with the manifest's own.
struct PodBus {
    url: String,
    manifest: String,
}

impl PodBus {
    fn of(bus: &EventBus) -> Result<Self> {
        Ok(PodBus {
            url: bus_url(bus)?,
            manifest: manifest_yaml(bus)?,
        })
    }

    fn args(&self) -> [String; 4] {
        [
            "--bus".into(),
            self.url.clone(),
            "--eventbus".into(),
            format!("{MANIFEST_DIR}/{EVENTBUS_FILE}"),
        ]
    }
}

/// What an `argon` container of an EventSource or Sensor pod needs.
struct ArgonPod<'a> {
    owner: &'a Owner,
    settings: &'a Settings,
    template: Option<&'a Template>,
    args: Vec<String>,
    env: Vec<EnvVar>,
    ports: Vec<ContainerPort>,
    volumes: Vec<Volume>,
    mounts: Vec<VolumeMount>,
    config_hash: String,
}

impl ArgonPod<'_> {
    fn template(self) -> PodTemplateSpec {
        let template = self.template.cloned().unwrap_or_default();
        let settings: ContainerSettings = template.container.clone().unwrap_or_default();
        let user_meta = template.metadata.clone().unwrap_or_default();
        let mut pod_labels = user_meta.labels.clone();
        pod_labels.extend(labels(self.owner.component, &self.owner.name));
        let mut annotations = user_meta.annotations.clone();
        annotations.insert(CONFIG_HASH_ANNOTATION.to_string(), self.config_hash);

        let mut env = self.env;
        env.extend(settings.env.clone());
        let mut mounts = self.mounts;
        mounts.extend(settings.volume_mounts.clone());
        let mut volumes = self.volumes;
        volumes.extend(template.volumes.clone());
        let mut ports = vec![ContainerPort {
            name: Some("metrics".into()),
            container_port: METRICS_PORT,
            ..ContainerPort::default()
        }];
        ports.extend(self.ports);

        let container = Container {
            name: "main".into(),
            image: Some(self.settings.image.clone()),
            image_pull_policy: settings
                .image_pull_policy
                .clone()
                .or_else(|| self.settings.image_pull_policy.clone()),
            args: Some(self.args),
            env: Some(env),
            env_from: (!settings.env_from.is_empty()).then(|| settings.env_from.clone()),
            ports: Some(ports),
            resources: settings.resources.clone(),
            security_context: Some(settings.security_context.clone().unwrap_or_else(restricted_container)),
            volume_mounts: Some(mounts),
            readiness_probe: Some(http_probe("/health", "metrics")),
            ..Container::default()
        };
        PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(pod_labels),
                annotations: Some(annotations),
                ..ObjectMeta::default()
            }),
            spec: Some(PodSpec {
                containers: vec![container],
                volumes: Some(volumes),
                // Only a pod given a service account talks to the API (a
                // sensor's k8s trigger); the others get no token.
                automount_service_account_token: template.service_account_name.is_none().then_some(false),
                service_account_name: template.service_account_name.clone(),
                security_context: Some(template.security_context.clone().unwrap_or_else(non_root_pod)),
                node_selector: (!template.node_selector.is_empty()).then(|| template.node_selector.clone()),
                tolerations: (!template.tolerations.is_empty()).then(|| template.tolerations.clone()),
                image_pull_secrets: (!template.image_pull_secrets.is_empty())
                    .then(|| template.image_pull_secrets.clone()),
                priority_class_name: template.priority_class_name.clone(),
                priority: template.priority,
                affinity: template.affinity.clone(),
                ..PodSpec::default()
            }),
        }
    }
}

/// The pod security of a template that sets none: not root (the image's
/// user is 65532).
fn non_root_pod() -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        ..PodSecurityContext::default()
    }
}

/// The container security of a template that sets none.
/// A probe that GETs `path` on the container's port named `port`.
fn http_probe(path: &str, port: &str) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String(port.into()),
            ..HTTPGetAction::default()
        }),
        ..Probe::default()
    }
}

fn restricted_container() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        ..SecurityContext::default()
    }
}

fn manifest_volume(config_map: &str) -> (Volume, VolumeMount) {
    (
        Volume {
            name: "manifest".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: config_map.to_string(),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        VolumeMount {
            name: "manifest".into(),
            mount_path: MANIFEST_DIR.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        },
    )
}

fn config_map(owner: &Owner, name: &str, file: &str, text: String) -> ConfigMap {
    ConfigMap {
        metadata: owner.meta(name),
        data: Some(BTreeMap::from([(file.to_string(), text)])),
        ..ConfigMap::default()
    }
}

/// The ConfigMap of a pod's manifest, with its EventBus's manifest beside it.
fn pod_config_map(owner: &Owner, name: &str, file: &str, text: String, bus: &PodBus) -> ConfigMap {
    let mut map = config_map(owner, name, file, text);
    if let Some(data) = &mut map.data {
        data.insert(EVENTBUS_FILE.to_string(), bus.manifest.clone());
    }
    map
}

fn hash_of(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

/// The webhook ports an EventSource listens on, in order.
pub fn webhook_ports(es: &EventSource) -> Vec<i32> {
    let mut ports: Vec<i32> = es
        .spec
        .events()
        .iter()
        .filter_map(|e| e.config.webhook_context())
        .filter_map(|w| w.port.trim().parse::<i32>().ok())
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// The ConfigMap, Deployment and (when it has webhook ports or a `service`)
/// Service of an EventSource publishing to `bus`.
pub fn eventsource_children(es: &EventSource, bus: &EventBus, settings: &Settings) -> Result<Vec<Child>> {
    const COMPONENT: &str = "argon-eventsource";
    const FILE: &str = "eventsource.yaml";
    let owner = Owner::of(es, COMPONENT)?;
    let (cm_name, deploy_name, svc_name) = eventsource_names(&owner.name);
    let manifest = manifest_yaml(es)?;
    let pod_bus = PodBus::of(bus)?;
    let config_hash = hash_of(&format!("{manifest}\n---\n{}", pod_bus.manifest));

    let (manifest_vol, manifest_mount) = manifest_volume(&cm_name);
    let (secret_vols, secret_mounts) = secret_volumes(&es.spec, bus);
    let mut args: Vec<String> = vec!["eventsource".into(), "run".into(), format!("{MANIFEST_DIR}/{FILE}")];
    args.extend(pod_bus.args());
    args.extend(["--metrics-addr".into(), format!("0.0.0.0:{METRICS_PORT}")]);
    if !secret_vols.is_empty() {
        args.extend(["--secrets-dir".to_string(), SECRETS_DIR.to_string()]);
    }
    let ports = webhook_ports(es);
    let pod = ArgonPod {
        owner: &owner,
        settings,
        template: es.spec.template.as_ref(),
        args,
        env: Vec::new(),
        ports: ports
            .iter()
            .map(|p| ContainerPort {
                name: Some(format!("http-{p}")),
                container_port: *p,
                ..ContainerPort::default()
            })
            .collect(),
        volumes: [vec![manifest_vol], secret_vols].concat(),
        mounts: [vec![manifest_mount], secret_mounts].concat(),
        config_hash,
    }
    .template();

    let deployment = Deployment {
        metadata: owner.meta(&deploy_name),
        spec: Some(DeploymentSpec {
            replicas: Some(es.spec.replicas.unwrap_or(1)),
            selector: LabelSelector {
                match_labels: Some(selector_labels(COMPONENT, &owner.name)),
                ..LabelSelector::default()
            },
            template: pod,
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    };
    let mut children = vec![
        Child::ConfigMap(pod_config_map(&owner, &cm_name, FILE, manifest, &pod_bus)),
        Child::Deployment(deployment),
    ];

    let declared = es.spec.service.clone().unwrap_or_default();
    let service_ports: Vec<ServicePort> = if declared.ports.is_empty() {
        ports
            .iter()
            .map(|p| ServicePort {
                name: Some(format!("http-{p}")),
                port: *p,
                target_port: Some(IntOrString::Int(*p)),
                protocol: Some("TCP".into()),
                ..ServicePort::default()
            })
            .collect()
    } else {
        declared.ports.clone()
    };
    if !service_ports.is_empty() {
        let mut meta = owner.meta(&svc_name);
        if let Some(extra) = &declared.metadata {
            let mut l = extra.labels.clone();
            l.extend(meta.labels.take().unwrap_or_default());
            meta.labels = Some(l);
            meta.annotations = (!extra.annotations.is_empty()).then(|| extra.annotations.clone());
        }
        children.push(Child::Service(Service {
            metadata: meta,
            spec: Some(ServiceSpec {
                selector: Some(selector_labels(COMPONENT, &owner.name)),
                ports: Some(service_ports),
                cluster_ip: declared.cluster_ip.clone(),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        }));
    }
    Ok(children)
}

/// The ConfigMap and Deployment of a Sensor listening on `bus`.
pub fn sensor_children(sensor: &Sensor, bus: &EventBus, settings: &Settings) -> Result<Vec<Child>> {
    const COMPONENT: &str = "argon-sensor";
    const FILE: &str = "sensor.yaml";
    let owner = Owner::of(sensor, COMPONENT)?;
    let (cm_name, deploy_name) = sensor_names(&owner.name);
    let manifest = manifest_yaml(sensor)?;
    let pod_bus = PodBus::of(bus)?;
    let config_hash = hash_of(&format!("{manifest}\n---\n{}", pod_bus.manifest));

    let (manifest_vol, manifest_mount) = manifest_volume(&cm_name);
    let (mut volumes, mut mounts) = secret_volumes(&sensor.spec, bus);
    let mut args: Vec<String> = vec!["sensor".into(), "run".into(), format!("{MANIFEST_DIR}/{FILE}")];
    args.extend(pod_bus.args());
    args.extend(["--metrics-addr".into(), format!("0.0.0.0:{METRICS_PORT}")]);
    if !volumes.is_empty() {
        args.extend(["--secrets-dir".to_string(), SECRETS_DIR.to_string()]);
    }
    if let Some(server) = &settings.server_url {
        args.extend(["--server".to_string(), server.clone()]);
    }
    if let Some(secret) = &settings.server_token_secret {
        args.extend(["--auth-token-file".to_string(), format!("{SERVER_TOKEN_DIR}/token")]);
        volumes.push(Volume {
            name: "server-token".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.clone()),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
        mounts.push(VolumeMount {
            name: "server-token".into(),
            mount_path: SERVER_TOKEN_DIR.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }
    volumes.insert(0, manifest_vol);
    mounts.insert(0, manifest_mount);
    let pod = ArgonPod {
        owner: &owner,
        settings,
        template: sensor.spec.template.as_ref(),
        args,
        env: Vec::new(),
        ports: Vec::new(),
        volumes,
        mounts,
        config_hash,
    }
    .template();

    let deployment = Deployment {
        metadata: owner.meta(&deploy_name),
        spec: Some(DeploymentSpec {
            replicas: Some(sensor.spec.replicas.unwrap_or(1)),
            revision_history_limit: sensor.spec.revision_history_limit,
            selector: LabelSelector {
                match_labels: Some(selector_labels(COMPONENT, &owner.name)),
                ..LabelSelector::default()
            },
            // Old and new sensor pods would share the durable consumers of
            // their dependencies: the old one stops before the new one starts.
            strategy: Some(DeploymentStrategy {
                type_: Some("Recreate".into()),
                ..DeploymentStrategy::default()
            }),
            template: pod,
            ..DeploymentSpec::default()
        }),
        ..Deployment::default()
    };
    Ok(vec![
        Child::ConfigMap(pod_config_map(&owner, &cm_name, FILE, manifest, &pod_bus)),
        Child::Deployment(deployment),
    ])
}

/// The NATS server configuration of a `jetstream` bus.
pub fn nats_config(name: &str, namespace: &str, js: &JetStreamBus) -> String {
    let (_, statefulset, service) = eventbus_names(name);
    let mut out = format!(
        "# NATS JetStream server of EventBus {name}, written by argon-controller.\n\
         server_name: $POD_NAME\n\
         port: {NATS_CLIENT_PORT}\n\
         http_port: {NATS_MONITOR_PORT}\n"
    );
    if let Some(max) = &js.max_payload {
        out.push_str(&format!("max_payload: {max}\n"));
    }
    out.push_str(&format!("jetstream {{\n  store_dir: {NATS_DATA_DIR}/jetstream\n"));
    for line in js.settings.as_deref().unwrap_or_default().lines() {
        if !line.trim().is_empty() {
            out.push_str(&format!("  {}\n", line.trim()));
        }
    }
    out.push_str("}\n");
    let replicas = js.replicas();
    if replicas > 1 {
        out.push_str(&format!(
            "cluster {{\n  name: eventbus-{name}\n  port: {NATS_CLUSTER_PORT}\n  routes: [\n"
        ));
        for i in 0..replicas {
            out.push_str(&format!(
                "    nats://{statefulset}-{i}.{service}.{namespace}.svc:{NATS_CLUSTER_PORT}\n"
            ));
        }
        out.push_str("  ]\n}\n");
    }
    out
}

/// The ConfigMap, StatefulSet and headless Service of an EventBus with
/// `jetstream`; nothing for `jetstreamExotic` (an existing server). Other bus
/// kinds are an error.
pub fn eventbus_children(bus: &EventBus) -> Result<Vec<Child>> {
    const COMPONENT: &str = "argon-eventbus";
    const FILE: &str = "nats.conf";
    bus_url(bus)?;
    let Some(js) = &bus.spec.jetstream else {
        return Ok(Vec::new());
    };
    let owner = Owner::of(bus, COMPONENT)?;
    let (cm_name, sts_name, svc_name) = eventbus_names(&owner.name);
    let config = nats_config(&owner.name, &owner.namespace, js);
    let config_hash = hash_of(&config);
    let version = js.version.as_deref().unwrap_or(DEFAULT_NATS_VERSION);
    let container_settings = js.container_template.clone().unwrap_or_default();

    let mut args = vec!["--config".to_string(), format!("{NATS_CONFIG_DIR}/{FILE}")];
    args.extend(js.start_args.iter().cloned());
    let port = |name: &str, port: i32| ContainerPort {
        name: Some(name.into()),
        container_port: port,
        ..ContainerPort::default()
    };
    let container = Container {
        name: "main".into(),
        image: Some(format!("nats:{version}-alpine")),
        image_pull_policy: container_settings.image_pull_policy.clone(),
        command: Some(vec!["nats-server".into()]),
        args: Some(args),
        env: Some(vec![EnvVar {
            name: "POD_NAME".into(),
            value_from: Some(EnvVarSource {
                field_ref: Some(ObjectFieldSelector {
                    field_path: "metadata.name".into(),
                    ..ObjectFieldSelector::default()
                }),
                ..EnvVarSource::default()
            }),
            ..EnvVar::default()
        }]),
        ports: Some(vec![
            port("client", NATS_CLIENT_PORT),
            port("cluster", NATS_CLUSTER_PORT),
            port("monitor", NATS_MONITOR_PORT),
        ]),
        resources: container_settings.resources.clone(),
        security_context: container_settings.security_context.clone(),
        volume_mounts: Some(vec![
            VolumeMount {
                name: "config".into(),
                mount_path: NATS_CONFIG_DIR.into(),
                read_only: Some(true),
                ..VolumeMount::default()
            },
            VolumeMount {
                name: "data".into(),
                mount_path: NATS_DATA_DIR.into(),
                ..VolumeMount::default()
            },
        ]),
        readiness_probe: Some(http_probe("/healthz?js-enabled-only=true", "monitor")),
        ..Container::default()
    };

    let mut volumes = vec![Volume {
        name: "config".into(),
        config_map: Some(ConfigMapVolumeSource {
            name: cm_name.clone(),
            ..ConfigMapVolumeSource::default()
        }),
        ..Volume::default()
    }];
    let claims = match &js.persistence {
        Some(p) => Some(vec![PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some("data".into()),
                ..ObjectMeta::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec![p.access_mode.clone().unwrap_or_else(|| "ReadWriteOnce".into())]),
                storage_class_name: p.storage_class_name.clone(),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([(
                        "storage".to_string(),
                        p.volume_size.clone().unwrap_or_else(|| Quantity("20Gi".into())),
                    )])),
                    ..VolumeResourceRequirements::default()
                }),
                ..PersistentVolumeClaimSpec::default()
            }),
            ..PersistentVolumeClaim::default()
        }]),
        None => {
            volumes.push(Volume {
                name: "data".into(),
                empty_dir: Some(Default::default()),
                ..Volume::default()
            });
            None
        }
    };

    let user_meta = js.metadata.clone().unwrap_or_default();
    let mut pod_labels = user_meta.labels.clone();
    pod_labels.extend(labels(COMPONENT, &owner.name));
    let mut annotations = user_meta.annotations.clone();
    annotations.insert(CONFIG_HASH_ANNOTATION.to_string(), config_hash);
    let statefulset = StatefulSet {
        metadata: owner.meta(&sts_name),
        spec: Some(StatefulSetSpec {
            replicas: Some(js.replicas()),
            service_name: Some(svc_name.clone()),
            pod_management_policy: Some("Parallel".into()),
            selector: LabelSelector {
                match_labels: Some(selector_labels(COMPONENT, &owner.name)),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    volumes: Some(volumes),
                    service_account_name: js.service_account_name.clone(),
                    security_context: js.security_context.clone(),
                    node_selector: (!js.node_selector.is_empty()).then(|| js.node_selector.clone()),
                    tolerations: (!js.tolerations.is_empty()).then(|| js.tolerations.clone()),
                    image_pull_secrets: (!js.image_pull_secrets.is_empty()).then(|| js.image_pull_secrets.clone()),
                    priority_class_name: js.priority_class_name.clone(),
                    priority: js.priority,
                    affinity: js.affinity.clone(),
                    ..PodSpec::default()
                }),
            },
            volume_claim_templates: claims,
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    };
    let service_port = |name: &str, port: i32| ServicePort {
        name: Some(name.into()),
        port,
        target_port: Some(IntOrString::String(name.into())),
        protocol: Some("TCP".into()),
        ..ServicePort::default()
    };
    let service = Service {
        metadata: owner.meta(&svc_name),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            // The cluster routes resolve every server before any is ready.
            publish_not_ready_addresses: Some(true),
            selector: Some(selector_labels(COMPONENT, &owner.name)),
            ports: Some(vec![
                service_port("client", NATS_CLIENT_PORT),
                service_port("cluster", NATS_CLUSTER_PORT),
                service_port("monitor", NATS_MONITOR_PORT),
            ]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    Ok(vec![
        Child::ConfigMap(config_map(&owner, &cm_name, FILE, config)),
        Child::StatefulSet(statefulset),
        Child::Service(service),
    ])
}

#[cfg(test)]
mod tests;
