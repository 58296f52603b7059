//! The Kubernetes Secrets a manifest reads. Argon resolves a `{name, key}`
//! selector to the file `DIR/name/key` (see `argon_crds::secret`), the layout
//! of a Secret mounted as a volume, so the controller mounts each Secret a
//! manifest names at `SECRETS_DIR/name` and passes `--secrets-dir`.

use std::collections::BTreeMap;

use serde_json::Value;

/// Keys whose values are not Argon's own secret selectors: ConfigMap
/// selectors of the same shape, and Kubernetes objects a trigger creates
/// (whose `secretKeyRef`s are for their own pods, not for the sensor).
const NOT_SECRETS: [&str; 4] = ["configmap", "configMap", "configMapKeyRef", "resource"];

/// The Secrets named by the selectors in a manifest's `spec` (its pod
/// `template` excepted: Kubernetes resolves those), as secret name ->
/// whether every selector naming it is `optional`.
pub fn referenced(spec: &Value) -> BTreeMap<String, bool> {
    let mut out = BTreeMap::new();
    if let Value::Object(fields) = spec {
        for (key, value) in fields {
            if key != "template" {
                walk(key, value, &mut out);
            }
        }
    }
    out
}

fn walk(key: &str, value: &Value, out: &mut BTreeMap<String, bool>) {
    if NOT_SECRETS.contains(&key) {
        return;
    }
    match value {
        Value::Object(fields) => {
            if let Some((name, optional)) = selector(fields) {
                let all_optional = out.entry(name.to_string()).or_insert(true);
                *all_optional &= optional;
                return;
            }
            for (k, v) in fields {
                walk(k, v, out);
            }
        }
        Value::Array(items) => {
            for item in items {
                walk(key, item, out);
            }
        }
        _ => {}
    }
}

/// `{name, key[, optional]}` with string name and key: a SecretKeySelector.
fn selector(fields: &serde_json::Map<String, Value>) -> Option<(&str, bool)> {
    if !fields.keys().all(|k| matches!(k.as_str(), "name" | "key" | "optional")) {
        return None;
    }
    let name = fields.get("name")?.as_str()?;
    fields.get("key")?.as_str()?;
    let optional = fields.get("optional").and_then(Value::as_bool).unwrap_or(false);
    Some((name, optional))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::referenced;

    #[test]
    fn finds_selectors_anywhere_but_in_configmaps_templates_and_created_objects() {
        let spec = json!({
            "template": {"container": {"env": [{"name": "X", "valueFrom": {"secretKeyRef": {"name": "pod-only", "key": "k"}}}]}},
            "webhook": {
                "example": {"port": "12000", "authSecret": {"name": "webhook-token", "key": "token"}},
                "other": {"port": "12001", "basicAuth": {"username": {"name": "basic", "key": "user"}, "password": {"name": "basic", "key": "pass", "optional": true}}}
            },
            "sqs": {"q": {"accessKey": {"name": "aws", "key": "id", "optional": true}}},
            "triggers": [
                {"template": {"k8s": {"source": {"resource": {"spec": {"env": [{"secretKeyRef": {"name": "created", "key": "k"}}]}}}}}},
                {"template": {"log": {}}, "parameters": [{"src": {"configmap": {"name": "cm", "key": "k"}}}]}
            ]
        });
        let found = referenced(&spec);
        assert_eq!(
            found.into_iter().collect::<Vec<_>>(),
            vec![
                ("aws".to_string(), true),
                ("basic".to_string(), false),
                ("webhook-token".to_string(), false),
            ]
        );
    }

    #[test]
    fn a_name_alone_is_not_a_selector() {
        let spec =
            json!({"dependencies": [{"name": "dep", "eventSourceName": "es", "eventName": "e"}], "x": {"name": "n"}});
        assert!(referenced(&spec).is_empty());
    }
}
