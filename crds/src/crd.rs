//! CustomResourceDefinitions generated from the Rust types (never written by
//! hand): what `argon crds` prints and `deploy/crds/` holds.

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

use crate::{eventbus::EventBus, eventsource::EventSource, sensor::Sensor};

/// The CRDs of the Argo Events kinds, in a fixed order.
pub fn definitions() -> Vec<CustomResourceDefinition> {
    vec![EventBus::crd(), EventSource::crd(), Sensor::crd()]
}

/// All CRDs as one multi-document YAML text.
pub fn yaml() -> String {
    let mut out = String::new();
    for crd in definitions() {
        out.push_str("---\n");
        // Serializing a CRD (plain data) cannot fail.
        out.push_str(&serde_norway::to_string(&crd).expect("a CRD serializes to YAML"));
    }
    out
}

#[cfg(test)]
mod tests {
    /// The committed CRDs must be what the types generate; regenerate with
    /// `cargo run -p argon -- crds > deploy/crds/argon-crds.yaml`.
    #[test]
    fn committed_crds_are_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../deploy/crds/argon-crds.yaml");
        let committed = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            committed == super::yaml(),
            "deploy/crds/argon-crds.yaml is stale: run `cargo run -p argon -- crds > deploy/crds/argon-crds.yaml`"
        );
    }

    #[test]
    fn crds_carry_field_descriptions() {
        let yaml = super::yaml();
        assert!(yaml.contains("kind: CustomResourceDefinition"));
        assert!(yaml.contains("name: sensors.argoproj.io"));
        assert!(yaml.contains("description:"));
    }
}
