//! Strict decoding of one document into a typed manifest.
//!
//! Serde alone cannot do this job: the Kubernetes types from k8s-openapi
//! ignore unknown fields, and `deny_unknown_fields` stops at the first one and
//! does not work with `flatten`. So unknown fields are found by walking the
//! document against the JSON schema of the target type (the same schema the
//! CRDs are generated from), which reports every unknown field with the
//! fields that were expected there; then serde decodes the document, with
//! `serde_path_to_error` giving the field path of a wrong type or a missing
//! field.

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use schemars::{JsonSchema, SchemaGenerator, generate::SchemaSettings};
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use crate::diag::{FieldPath, Finding, Severity, suggest};
use crate::upstream;

/// The JSON schema of `T`, with its definitions, as a plain JSON value.
pub fn schema_of<T: JsonSchema>() -> Value {
    let generator = SchemaGenerator::new(SchemaSettings::draft2020_12());
    generator.into_root_schema_for::<T>().to_value()
}

/// The schema of a Kubernetes object type `T` as it is written in a
/// manifest: the kube derive's schema only describes `spec` and `status`, so
/// `apiVersion`, `kind` and `metadata` (an `ObjectMeta`) are added.
pub fn object_schema_of<T: JsonSchema>() -> Value {
    let mut generator = SchemaGenerator::new(SchemaSettings::draft2020_12());
    let metadata = generator.subschema_for::<ObjectMeta>().to_value();
    let mut schema = generator.into_root_schema_for::<T>().to_value();
    if let Some(Value::Object(props)) = schema.get_mut("properties") {
        props.entry("apiVersion").or_insert_with(|| json!({"type": "string"}));
        props.entry("kind").or_insert_with(|| json!({"type": "string"}));
        props.entry("metadata").or_insert(metadata);
    }
    schema
}

/// Decodes a whole manifest (`apiVersion`, `kind`, `metadata`, `spec`, ...)
/// as the Kubernetes object type `T`; see [`decode_with`].
pub fn decode_object<T: JsonSchema + DeserializeOwned + 'static>(value: &Value) -> Result<T, Vec<Finding>> {
    decode_object_reporting(value).map(|(t, _)| t)
}

/// [`decode_object`], with the warnings about upstream fields Argon does not
/// support yet.
pub fn decode_object_reporting<T: JsonSchema + DeserializeOwned + 'static>(
    value: &Value,
) -> Result<(T, Vec<Finding>), Vec<Finding>> {
    decode_reporting(value, &cached_object_schema::<T>())
}

/// The schema a Kubernetes object type `T` is checked against (generated
/// once per type).
pub fn object_schema<T: JsonSchema + 'static>() -> Arc<Value> {
    cached_object_schema::<T>()
}

/// [`object_schema_of`], generated once per type: generating a schema costs
/// far more than checking a document against it.
fn cached_object_schema<T: JsonSchema + 'static>() -> Arc<Value> {
    static CACHE: OnceLock<Mutex<HashMap<TypeId, Arc<Value>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let id = TypeId::of::<T>();
    if let Some(schema) = cache.lock().unwrap_or_else(|p| p.into_inner()).get(&id) {
        return schema.clone();
    }
    let schema = Arc::new(object_schema_of::<T>());
    cache
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(id, schema.clone());
    schema
}

/// Decodes `value` as `T`. Errors carry the field path; unknown fields are
/// all reported, each with a suggestion when a known field is close.
pub fn decode<T: JsonSchema + DeserializeOwned>(value: &Value) -> Result<T, Vec<Finding>> {
    decode_with(value, &schema_of::<T>())
}

/// Decodes `value` as `T`, checking its fields against `schema`.
pub fn decode_with<T: DeserializeOwned>(value: &Value, schema: &Value) -> Result<T, Vec<Finding>> {
    decode_reporting(value, schema).map(|(t, _)| t)
}

/// Decodes `value` as `T`, checking its fields against `schema`; an upstream
/// field Argon does not support yet is a warning that comes with the value.
pub fn decode_reporting<T: DeserializeOwned>(value: &Value, schema: &Value) -> Result<(T, Vec<Finding>), Vec<Finding>> {
    let mut findings = Vec::new();
    unknown_fields(value, schema, schema, &FieldPath::root(), &mut findings);
    if findings.iter().any(|f| f.severity == Severity::Error) {
        return Err(findings);
    }
    let decoded = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let path = if path == "." { String::new() } else { path };
        let message = tidy_serde_message(&e.inner().to_string());
        let message = if path.is_empty() {
            message
        } else {
            format!("{path}: {message}")
        };
        vec![Finding::error(path, message)]
    })?;
    Ok((decoded, findings))
}

/// serde says "invalid type: integer `5`, expected a string"; keep that, but
/// use the quotes the rest of Argon's messages use.
fn tidy_serde_message(m: &str) -> String {
    m.replace('`', "'")
}

/// Reports every key of `value` that the schema does not allow.
pub fn unknown_fields(value: &Value, schema: &Value, root: &Value, path: &FieldPath, out: &mut Vec<Finding>) {
    let mut shape = Shape::default();
    collect(schema, root, &mut shape, 0);
    if shape.free {
        return;
    }
    match value {
        Value::Object(map) => check_object(map, &shape, root, path, out),
        Value::Array(items) => {
            if let Some(items_schema) = shape.items.first() {
                for (i, item) in items.iter().enumerate() {
                    unknown_fields(item, items_schema, root, &path.index(i), out);
                }
            }
        }
        _ => {}
    }
}

fn check_object(map: &Map<String, Value>, shape: &Shape, root: &Value, path: &FieldPath, out: &mut Vec<Finding>) {
    if shape.properties.is_empty() && shape.additional.is_none() {
        // An object with no declared fields: free-form (e.g. an inline resource).
        return;
    }
    for (key, v) in map {
        let p = path.key(key);
        let matching: Vec<&Value> = shape
            .properties
            .iter()
            .filter(|(k, _)| k == key)
            .map(|(_, s)| s)
            .collect();
        if !matching.is_empty() {
            // When alternatives declare the same field, check against the first.
            unknown_fields(v, matching[0], root, &p, out);
        } else if let Some(additional) = &shape.additional {
            unknown_fields(v, additional, root, &p, out);
        } else if v.is_null() {
            // `field: null` means "not set" everywhere in Kubernetes.
        } else if let Some(note) = upstream::not_supported(&shape.names, key) {
            out.push(Finding::warning(
                p.clone(),
                format!("field '{key}' at {p} is not supported by Argon yet; {note}"),
            ));
        } else {
            let known: Vec<&str> = shape.properties.iter().map(|(k, _)| k.as_str()).collect();
            let mut message = format!("unknown field '{key}' at {p}");
            if let Some(s) = suggest(key, known.iter().copied()) {
                message.push_str(&format!("; did you mean '{s}'?"));
            } else if !known.is_empty() && known.len() <= 12 {
                let mut sorted = known.clone();
                sorted.sort_unstable();
                sorted.dedup();
                message.push_str(&format!("; expected one of: {}", sorted.join(", ")));
            }
            out.push(Finding::error(p, message));
        }
    }
}

/// What a schema allows for an object or array, merged over `$ref`,
/// `allOf`, `anyOf` and `oneOf` (alternatives are merged generously: a field
/// any alternative declares is known).
#[derive(Default)]
pub struct Shape {
    /// The names of the schema definitions merged in (`Template`,
    /// `io.k8s.api.core.v1.Container`): what the object is, for the table of
    /// upstream fields not supported yet.
    pub names: Vec<String>,
    /// Anything goes (`true`, `{}`, or a schema that declares no structure).
    pub free: bool,
    pub properties: Vec<(String, Value)>,
    pub additional: Option<Value>,
    pub items: Vec<Value>,
    structured: bool,
}

impl Shape {
    /// The shape of `schema`, with `$ref`s resolved against `root`.
    pub fn of(schema: &Value, root: &Value) -> Shape {
        let mut shape = Shape::default();
        collect(schema, root, &mut shape, 0);
        shape
    }

    /// The schema of the field `name`, if the shape declares it.
    pub fn field(&self, name: &str) -> Option<&Value> {
        self.properties.iter().find(|(k, _)| k == name).map(|(_, s)| s)
    }
}

fn collect(schema: &Value, root: &Value, shape: &mut Shape, depth: usize) {
    if depth > 64 {
        shape.free = true;
        return;
    }
    let obj = match schema {
        Value::Bool(true) => {
            shape.free = true;
            return;
        }
        Value::Object(o) => o,
        _ => return,
    };
    if obj.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true)) {
        shape.free = true;
        return;
    }
    let before = shape.structured;
    if let Some(Value::String(r)) = obj.get("$ref")
        && let Some(target) = resolve(r, root)
    {
        if let Some(name) = r.rsplit('/').next() {
            shape.names.push(name.replace("~1", "/").replace("~0", "~"));
        }
        collect(target, root, shape, depth + 1);
    }
    for key in ["allOf", "anyOf", "oneOf"] {
        if let Some(Value::Array(alts)) = obj.get(key) {
            for alt in alts {
                collect(alt, root, shape, depth + 1);
            }
        }
    }
    if let Some(Value::Object(props)) = obj.get("properties") {
        shape.structured = true;
        for (k, v) in props {
            shape.properties.push((k.clone(), v.clone()));
        }
    }
    match obj.get("additionalProperties") {
        Some(Value::Bool(false)) => shape.structured = true,
        Some(Value::Bool(true)) => shape.free = true,
        Some(s @ Value::Object(_)) => {
            shape.structured = true;
            shape.additional = Some(s.clone());
        }
        _ => {}
    }
    if let Some(items) = obj.get("items") {
        shape.structured = true;
        shape.items.push(items.clone());
    }
    let declares_type = obj.contains_key("type") || obj.contains_key("enum") || obj.contains_key("const");
    if !shape.structured && !before && !declares_type && !obj.contains_key("$ref") && !has_combinator(obj) {
        // `{}` or a schema with only a description: any value.
        shape.free = true;
    }
    if obj.get("type") == Some(&Value::String("object".into()))
        && !obj.contains_key("properties")
        && !obj.contains_key("additionalProperties")
    {
        // `type: object` with no fields declared (serde_json::Map): free-form.
        shape.free = true;
    }
}

fn has_combinator(obj: &Map<String, Value>) -> bool {
    ["allOf", "anyOf", "oneOf"].iter().any(|k| obj.contains_key(*k))
}

fn resolve<'a>(reference: &str, root: &'a Value) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    root.pointer(pointer)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use schemars::JsonSchema;
    use serde::Deserialize;
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Outer {
        name: String,
        #[serde(default)]
        triggers: Vec<Trigger>,
        #[serde(default)]
        labels: BTreeMap<String, String>,
        #[serde(default)]
        container: Option<k8s_openapi::api::core::v1::Container>,
        #[serde(default)]
        raw: Option<Value>,
    }

    #[derive(Debug, Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Trigger {
        source: Option<String>,
        operation: Option<String>,
        #[serde(flatten)]
        extra: Common,
    }

    #[derive(Debug, Deserialize, JsonSchema)]
    #[serde(rename_all = "camelCase")]
    #[allow(dead_code)]
    struct Common {
        retries: Option<u32>,
    }

    #[test]
    fn unknown_field_with_path_and_suggestion() {
        let v = json!({"name": "a", "triggers": [{"source": "x"}, {"sorce": "y", "retries": 2}]});
        let e = decode::<Outer>(&v).unwrap_err();
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].path, "triggers[1].sorce");
        assert_eq!(
            e[0].message,
            "unknown field 'sorce' at triggers[1].sorce; did you mean 'source'?"
        );
    }

    #[test]
    fn unknown_fields_inside_kubernetes_types_are_found() {
        let v = json!({"name": "a", "container": {"image": "x", "comand": ["a"]}});
        let e = decode::<Outer>(&v).unwrap_err();
        assert_eq!(e[0].path, "container.comand");
        assert!(e[0].message.ends_with("did you mean 'command'?"), "{}", e[0].message);
    }

    #[test]
    fn maps_and_raw_values_take_any_key() {
        let v = json!({"name": "a", "labels": {"x.y/z": "1"}, "raw": {"anything": {"goes": [1]}}});
        decode::<Outer>(&v).unwrap();
    }

    #[test]
    fn type_errors_and_missing_fields_name_the_path() {
        let e = decode::<Outer>(&json!({"triggers": []})).unwrap_err();
        assert_eq!(e[0].message, "missing field 'name'");
        let e = decode::<Outer>(&json!({"name": "a", "triggers": [{"source": 5}]})).unwrap_err();
        assert_eq!(e[0].path, "triggers[0].source");
        assert!(
            e[0].message.contains("invalid type: integer '5', expected a string"),
            "{}",
            e[0].message
        );
    }

    #[test]
    fn every_unknown_field_is_reported() {
        let v = json!({"name": "a", "nmae": 1, "triggers": [{"zzz": 1}]});
        let e = decode::<Outer>(&v).unwrap_err();
        assert_eq!(e.len(), 2, "{e:?}");
    }
}
