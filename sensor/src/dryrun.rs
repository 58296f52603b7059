//! `argon sensor test`: runs transforms, filters, conditions and parameter
//! mapping offline on sample events and reports, as JSON, for each trigger
//! whether it fires and the exact request it would send. Nothing is sent,
//! no secret is read.

use argon_eventbus::{Data, Event};
use serde_json::{Value, json};

use crate::params::Events;
use crate::sensor::CompiledSensor;
use crate::{Error, Result, SensorEvent};

/// A sample event: its JSON (an envelope `{"context": {...}, "data": ...}`,
/// or just the data) and, optionally, the dependency it is for.
#[derive(Clone, Debug)]
pub struct Sample {
    /// The file's JSON.
    pub json: Value,
    /// The dependency; found from the envelope's source and subject, or the
    /// only dependency, when unset.
    pub dependency: Option<String>,
}

/// Runs the samples through the sensor, in order, and reports.
pub fn run(sensor: &CompiledSensor, samples: &[Sample]) -> Result<Value> {
    let name = &sensor.identity.name;
    let mut reports = Vec::new();
    let mut latest = Events::new();
    for (i, sample) in samples.iter().enumerate() {
        let dep = pick_dependency(sensor, sample)?;
        let event = to_event(&sample.json, &dep.spec.event_source_name, &dep.spec.event_name, i);
        let event = SensorEvent::from_event(&event);
        let (passed, error, seen) = match dep.accept(&event) {
            Ok(Some(e)) => (true, None, e),
            Ok(None) => (false, None, event.clone()),
            Err(e) => (false, Some(e.to_string()), event.clone()),
        };
        let mut report = json!({
            "dependency": dep.spec.name,
            "passed": passed,
            "event": seen.to_json(),
        });
        if let Some(e) = error {
            report["error"] = Value::String(e);
        }
        reports.push(report);
        if passed {
            latest.insert(dep.spec.name.clone(), seen);
        }
    }
    let mut triggers = Vec::new();
    for t in &sensor.triggers {
        let relevant: Events = latest
            .iter()
            .filter(|(k, _)| t.dependencies.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        let fires = t.condition.eval(&|d| relevant.contains_key(d));
        let mut report = json!({"name": t.name, "condition": t.condition.to_string(), "fires": fires});
        if fires {
            match sensor.prepare(t, &relevant, true) {
                Ok((request, key)) => {
                    report["idempotencyKey"] = Value::String(key);
                    report["request"] = serde_json::to_value(&request).unwrap_or(Value::Null);
                }
                Err(e) => {
                    report["fires"] = Value::Bool(false);
                    report["error"] = Value::String(e.to_string());
                }
            }
        } else {
            let missing: Vec<&String> = t.dependencies.iter().filter(|d| !relevant.contains_key(*d)).collect();
            report["waitingFor"] = json!(missing);
        }
        triggers.push(report);
    }
    Ok(json!({"sensor": name, "events": reports, "triggers": triggers}))
}

fn pick_dependency<'a>(sensor: &'a CompiledSensor, sample: &Sample) -> Result<&'a crate::sensor::CompiledDependency> {
    let names = || {
        sensor
            .dependencies
            .iter()
            .map(|d| d.spec.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(name) = &sample.dependency {
        return sensor.dependency(name).ok_or_else(|| {
            Error::config(
                &sensor.identity.name,
                format!("no dependency '{name}' (dependencies: {})", names()),
            )
        });
    }
    let ctx = sample.json.get("context");
    let field = |k: &str| ctx.and_then(|c| c.get(k)).and_then(Value::as_str);
    if let (Some(source), Some(subject)) = (field("source"), field("subject"))
        && let Some(d) = sensor
            .dependencies
            .iter()
            .find(|d| d.spec.event_source_name == source && d.spec.event_name == subject)
    {
        return Ok(d);
    }
    match sensor.dependencies.as_slice() {
        [only] => Ok(only),
        _ => Err(Error::config(
            &sensor.identity.name,
            format!(
                "the sensor has several dependencies; name one with --dependency ({})",
                names()
            ),
        )),
    }
}

/// A bus event from a sample: the envelope's context (defaults filled in
/// from the dependency) and data, or the whole JSON as data.
pub fn to_event(json: &Value, source: &str, subject: &str, index: usize) -> Event {
    let is_envelope = json
        .as_object()
        .is_some_and(|o| o.contains_key("context") && o.contains_key("data"));
    let (ctx, data) = if is_envelope {
        (json.get("context").cloned(), json["data"].clone())
    } else {
        (None, json.clone())
    };
    let mut event = Event::new(source, subject, "webhook", &data).with_id(format!("dry-run-{}", index + 1));
    if let Some(Value::Object(ctx)) = ctx {
        let s = |k: &str| ctx.get(k).and_then(Value::as_str).map(str::to_owned);
        if let Some(v) = s("id") {
            event.context.id = v;
        }
        if let Some(v) = s("source") {
            event.context.source = v;
        }
        if let Some(v) = s("subject") {
            event.context.subject = v;
        }
        if let Some(v) = s("type") {
            event.context.r#type = v;
        }
        if let Some(v) = s("datacontenttype") {
            event.context.datacontenttype = v;
        }
        if let Some(t) = s("time").and_then(|t| t.parse().ok()) {
            event.context.time = t;
        }
    }
    if let Value::String(s) = &data
        && event.context.datacontenttype != argon_eventbus::event::APPLICATION_JSON
    {
        event.data = Data::Binary(s.clone().into_bytes().into());
    }
    event
}
