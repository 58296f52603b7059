//! The `script` filter: a Lua script sees the event data as the global
//! `event` and returns whether the event passes.

use mlua::{Lua, LuaSerdeExt, Value as LuaValue};
use serde_json::Value;

use crate::{Error, Result, SensorEvent};

/// A Lua filter script.
#[derive(Clone, Debug, PartialEq)]
pub struct ScriptFilter {
    source: String,
}

impl ScriptFilter {
    /// Checks that the script compiles.
    pub fn compile(source: &str) -> Result<Self> {
        Lua::new().load(source).into_function().map_err(|e| Error::Filter {
            kind: "script",
            message: format!("Lua script does not compile: {e}"),
        })?;
        Ok(ScriptFilter {
            source: source.to_owned(),
        })
    }

    /// Runs the script; only a returned `true` passes.
    pub fn matches(&self, event: &SensorEvent) -> Result<bool> {
        let out = run_lua(&self.source, &event.data).map_err(|message| Error::Filter {
            kind: "script",
            message,
        })?;
        Ok(out == Value::Bool(true))
    }
}

/// Runs a Lua chunk with `event` bound to `data`; returns its first return
/// value as JSON. A fresh interpreter per call: scripts share no state.
pub(crate) fn run_lua(source: &str, data: &Value) -> std::result::Result<Value, String> {
    let lua = Lua::new();
    let event = lua.to_value(data).map_err(|e| e.to_string())?;
    lua.globals().set("event", event).map_err(|e| e.to_string())?;
    let out: LuaValue = lua.load(source).eval().map_err(|e| e.to_string())?;
    match out {
        LuaValue::Nil => Ok(Value::Null),
        other => lua.from_value(other).map_err(|e| e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::filter::tests::event;

    #[test]
    fn table() {
        let script = r#"if event.body.a == "b" and event.body.d.e == "z" then return true else return false end"#;
        let cases = [
            (script, json!({"body": {"a": "b", "d": {"e": "z"}}}), Some(true)),
            (script, json!({"body": {"a": "b", "d": {"e": "y"}}}), Some(false)),
            ("return event.n > 3", json!({"n": 4}), Some(true)),
            ("return 'yes'", json!({}), Some(false)),
            ("return event.missing.field", json!({}), None),
        ];
        for (source, data, want) in cases {
            let f = ScriptFilter::compile(source).unwrap();
            assert_eq!(f.matches(&event(data.clone())).ok(), want, "{source} {data}");
        }
        assert!(ScriptFilter::compile("return (").is_err());
    }
}
