//! `transform`: rewrites an event's data before the filters see it, with a
//! jq program (jaq) or a Lua script (`event` is the data; the script returns
//! the new data).
//!
//! The jq program is compiled again for each event: jaq's compiled filters
//! are not `Send`, and transforms are rare enough that the compile cost
//! (tens of microseconds) does not matter. It is compiled once at startup to
//! report a syntax error early.

use argon_crds::sensor::EventDependencyTransformer;
use jaq_core::load::{Arena, File, Loader};
use jaq_core::{Compiler, Ctx, Vars, data, unwrap_valr};
use serde_json::Value;

use crate::filter::script::run_lua;
use crate::{Error, Result, SensorEvent};

/// A dependency's transform.
#[derive(Clone, Debug, PartialEq)]
pub enum Transform {
    /// A jq program; its first output is the new data.
    Jq(String),
    /// A Lua script; its return value is the new data.
    Lua(String),
}

impl Transform {
    /// The transform of a manifest (`None` when neither `jq` nor `script` is set).
    pub fn compile(t: &EventDependencyTransformer) -> Result<Option<Self>> {
        if let Some(jq) = t.jq.as_deref().filter(|s| !s.trim().is_empty()) {
            run_jq(jq, None)?;
            return Ok(Some(Transform::Jq(jq.to_owned())));
        }
        if let Some(script) = t.script.as_deref().filter(|s| !s.trim().is_empty()) {
            mlua::Lua::new()
                .load(script)
                .into_function()
                .map_err(|e| Error::Transform(format!("Lua script does not compile: {e}")))?;
            return Ok(Some(Transform::Lua(script.to_owned())));
        }
        Ok(None)
    }

    /// The event with its data transformed.
    pub fn apply(&self, event: &SensorEvent) -> Result<SensorEvent> {
        let data = match self {
            Transform::Jq(code) => run_jq(code, Some(&event.data))?,
            Transform::Lua(script) => {
                let out = run_lua(script, &event.data).map_err(|e| Error::Transform(format!("Lua script: {e}")))?;
                if out.is_null() {
                    return Err(Error::Transform(
                        "Lua script returned nothing (return the event)".to_owned(),
                    ));
                }
                out
            }
        };
        Ok(event.with_data(data))
    }
}

/// Compiles `code` and, given an input, runs it and returns its first output.
fn run_jq(code: &str, input: Option<&Value>) -> Result<Value> {
    let program = File { code, path: () };
    let defs = jaq_core::defs().chain(jaq_std::defs()).chain(jaq_json::defs());
    let funs = jaq_core::funs().chain(jaq_std::funs()).chain(jaq_json::funs());
    let loader = Loader::new(defs);
    let arena = Arena::default();
    let modules = loader
        .load(&arena, program)
        .map_err(|e| Error::Transform(format!("jq program {code:?} does not parse: {e:?}")))?;
    let filter = Compiler::default()
        .with_funs(funs)
        .compile(modules)
        .map_err(|e| Error::Transform(format!("jq program {code:?} does not compile: {e:?}")))?;
    let Some(input) = input else {
        return Ok(Value::Null);
    };
    let input = jaq_json::read::parse_single(input.to_string().as_bytes())
        .map_err(|e| Error::Transform(format!("event data is not JSON: {e}")))?;
    let ctx = Ctx::<data::JustLut<jaq_json::Val>>::new(&filter.lut, Vars::new([]));
    let mut out = filter.id.run((ctx, input)).map(unwrap_valr);
    match out.next() {
        Some(Ok(v)) => serde_json::from_str(&v.to_string())
            .map_err(|e| Error::Transform(format!("jq program {code:?} gave a value that is not JSON: {e}"))),
        Some(Err(e)) => Err(Error::Transform(format!("jq program {code:?} failed: {e}"))),
        None => Err(Error::Transform(format!("jq program {code:?} gave no output"))),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::filter::tests::event;

    fn transform(jq: Option<&str>, script: Option<&str>) -> Result<Option<Transform>> {
        Transform::compile(&EventDependencyTransformer {
            jq: jq.map(Into::into),
            script: script.map(Into::into),
        })
    }

    #[test]
    fn table() {
        let e = event(json!({"body": {"message": "hi", "n": 2}}));
        let cases = [
            (
                Some(".body.message *= 2"),
                None,
                json!({"body": {"message": "hihi", "n": 2}}),
            ),
            (Some(".body.n + 1"), None, json!(3)),
            (Some("{m: .body.message | ascii_upcase}"), None, json!({"m": "HI"})),
            (
                None,
                Some("event.body.message='updated'\nreturn event"),
                json!({"body": {"message": "updated", "n": 2}}),
            ),
        ];
        for (jq, script, want) in cases {
            let t = transform(jq, script).unwrap().unwrap();
            let out = t.apply(&e).unwrap();
            assert_eq!(out.data, want, "{jq:?} {script:?}");
            assert_eq!(serde_json::from_str::<Value>(&out.data_text).unwrap(), want);
            assert_eq!(out.context, e.context);
        }
    }

    #[test]
    fn errors() {
        assert!(transform(Some(".body |||"), None).is_err());
        assert!(transform(None, Some("return (")).is_err());
        assert!(transform(None, None).unwrap().is_none());
        let t = transform(Some("error(\"boom\")"), None).unwrap().unwrap();
        assert!(t.apply(&event(json!({}))).is_err());
        let t = transform(Some("empty"), None).unwrap().unwrap();
        assert!(t.apply(&event(json!({}))).is_err());
    }
}
