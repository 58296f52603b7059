//! The event history API: the accepted events the buses keep (list, one
//! event with the workflows it created, replay) and the event flow, the
//! graph of EventSources → Sensors → triggers → workflows with counts per
//! edge. Served by `argon run`, which has the buses and the manifests; a
//! server without them answers 404 on these paths.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, RwLock};

use argon_client::Error;
use argon_client::list::ListOptions;
use argon_crds::eventsource::EventSource;
use argon_crds::sensor::Sensor;
use argon_crds::workflow::Workflow;
use argon_eventbus::{EventBus, HistoryQuery, StoredEvent, SubjectFilter};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::server::{ApiError, ApiState};

/// Label with the sensor that created a workflow.
pub const LABEL_SENSOR: &str = "events.argoproj.io/sensor";
/// Label with the trigger that created a workflow.
pub const LABEL_TRIGGER: &str = "events.argoproj.io/trigger";
/// Label with the id of the event that fired the trigger.
pub const LABEL_EVENT: &str = "events.argon.dev/event";
/// Label with the id of the original event of a replay.
pub const LABEL_REPLAY_OF: &str = "events.argon.dev/replay-of";
/// Annotation with the ids of every event a firing used, as JSON.
pub const ANNOTATION_EVENTS: &str = "events.argon.dev/events";

/// The default page size of the event list.
const DEFAULT_LIMIT: usize = 50;
/// Most events the event flow counts per bus.
const FLOW_EVENTS: usize = 50_000;
/// Most workflows the event flow counts per trigger.
const FLOW_WORKFLOWS: usize = 10_000;
/// Workflows created by sensors since an event, looked through for the
/// event's id in their annotation (the events of multi-dependency triggers
/// that were not the last to arrive carry no label).
const ANNOTATION_SCAN: usize = 500;

/// What the event API serves: the open buses and the running manifests,
/// both replaced by `argon run` on every reload.
#[derive(Default)]
pub struct EventsApi {
    buses: RwLock<BTreeMap<String, Arc<dyn EventBus>>>,
    topology: RwLock<Topology>,
}

impl EventsApi {
    /// An API with no bus yet.
    pub fn new() -> EventsApi {
        EventsApi::default()
    }

    /// Serves the history of bus `name`.
    pub fn set_bus(&self, name: &str, bus: Arc<dyn EventBus>) {
        write(&self.buses).insert(name.to_owned(), bus);
    }

    /// The EventSources and Sensors running now.
    pub fn set_topology(&self, topology: Topology) {
        *write(&self.topology) = topology;
    }

    /// The EventSources and Sensors running now.
    pub fn topology(&self) -> Topology {
        read(&self.topology).clone()
    }

    fn buses(&self) -> Vec<(String, Arc<dyn EventBus>)> {
        read(&self.buses).iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

/// The running EventSources and Sensors, as the event flow draws them.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Topology {
    pub event_sources: Vec<SourceNode>,
    pub sensors: Vec<SensorNode>,
}

/// An EventSource and its events.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceNode {
    pub name: String,
    pub bus: String,
    /// `(kind, event name)` of each event it declares.
    pub events: Vec<SourceEvent>,
}

/// One event an EventSource declares.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SourceEvent {
    pub name: String,
    pub kind: String,
}

/// A Sensor: what it listens to and what it fires.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SensorNode {
    pub name: String,
    pub bus: String,
    pub dependencies: Vec<DependencyNode>,
    pub triggers: Vec<TriggerNode>,
}

/// A sensor's dependency on one event of one EventSource.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DependencyNode {
    pub name: String,
    pub event_source_name: String,
    pub event_name: String,
}

/// A trigger and the dependencies its conditions name.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerNode {
    pub name: String,
    /// `argoWorkflow`, `http`, `log`...
    pub kind: String,
    pub dependencies: Vec<String>,
}

impl Topology {
    /// The graph of these manifests.
    pub fn of(event_sources: &[EventSource], sensors: &[Sensor]) -> Topology {
        let event_sources = event_sources
            .iter()
            .map(|es| SourceNode {
                name: es.metadata.name.clone().unwrap_or_default(),
                bus: es.spec.event_bus_name.clone().unwrap_or_else(|| "default".to_owned()),
                events: es
                    .spec
                    .events()
                    .iter()
                    .map(|e| SourceEvent {
                        name: e.name.to_owned(),
                        kind: e.kind.as_str().to_owned(),
                    })
                    .collect(),
            })
            .collect();
        let sensors = sensors
            .iter()
            .map(|s| {
                let all: Vec<&str> = s.spec.dependencies.iter().map(|d| d.name.as_str()).collect();
                SensorNode {
                    name: s.metadata.name.clone().unwrap_or_default(),
                    bus: s.spec.event_bus().to_owned(),
                    dependencies: s
                        .spec
                        .dependencies
                        .iter()
                        .map(|d| DependencyNode {
                            name: d.name.clone(),
                            event_source_name: d.event_source_name.clone(),
                            event_name: d.event_name.clone(),
                        })
                        .collect(),
                    triggers: s
                        .spec
                        .triggers
                        .iter()
                        .map(|t| TriggerNode {
                            name: t.template.name.clone(),
                            kind: t.template.kind().map(|k| k.name().to_owned()).unwrap_or_default(),
                            dependencies: trigger_dependencies(t.template.conditions.as_deref(), &all),
                        })
                        .collect(),
                }
            })
            .collect();
        Topology { event_sources, sensors }
    }
}

/// The dependencies a trigger's conditions name (all of them without conditions).
fn trigger_dependencies(conditions: Option<&str>, all: &[&str]) -> Vec<String> {
    let parsed = conditions
        .filter(|c| !c.trim().is_empty())
        .and_then(|c| argon_crds::sensor::conditions::Condition::parse(c).ok());
    match parsed {
        Some(condition) => {
            let mut names: Vec<String> = condition.names().into_iter().map(str::to_owned).collect();
            names.dedup();
            names
        }
        None => all.iter().map(|s| (*s).to_owned()).collect(),
    }
}

/// The routes of the event API, under the API's auth.
pub(crate) fn routes() -> Router<ApiState> {
    Router::new()
        .route("/api/v1/events", get(list_events))
        .route("/api/v1/events/{id}", get(get_event))
        .route("/api/v1/events/{id}/replay", post(replay_event))
        .route("/api/v1/event-flow", get(event_flow))
}

/// An error of the event API.
enum EventsError {
    /// Not served here (no bus).
    NoHistory,
    NotFound(String),
    Invalid(String),
    /// The bus failed.
    Bus(argon_eventbus::Error),
    Engine(Error),
}

impl From<Error> for EventsError {
    fn from(e: Error) -> Self {
        EventsError::Engine(e)
    }
}

impl From<argon_eventbus::Error> for EventsError {
    fn from(e: argon_eventbus::Error) -> Self {
        EventsError::Bus(e)
    }
}

impl IntoResponse for EventsError {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            EventsError::NoHistory => (
                StatusCode::NOT_FOUND,
                5,
                "this server has no event bus: the event history is served by `argon run`".to_owned(),
            ),
            EventsError::NotFound(m) => (StatusCode::NOT_FOUND, 5, m),
            EventsError::Invalid(m) => (StatusCode::BAD_REQUEST, 3, m),
            EventsError::Bus(e) => {
                tracing::warn!(error = %e, "event bus error in the event API");
                (StatusCode::SERVICE_UNAVAILABLE, 14, e.to_string())
            }
            EventsError::Engine(e) => return ApiError(e).into_response(),
        };
        (status, Json(json!({"code": code, "message": message}))).into_response()
    }
}

type EventsResult<T> = std::result::Result<T, EventsError>;

fn api(s: &ApiState) -> EventsResult<&Arc<EventsApi>> {
    s.events.as_ref().ok_or(EventsError::NoHistory)
}

/// `since` as RFC 3339 or as a duration back from now (`1h`, `7d`).
fn parse_since(text: &str) -> EventsResult<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let d = argon_crds::time::parse_duration(text).map_err(|e| {
        EventsError::Invalid(format!(
            "since '{text}' is neither RFC 3339 nor a duration like 1h: {e}"
        ))
    })?;
    let d = chrono::Duration::from_std(d).map_err(|e| EventsError::Invalid(format!("since '{text}': {e}")))?;
    Ok(Utc::now() - d)
}

/// The query of `GET /api/v1/events`.
#[derive(Deserialize, Default)]
struct EventsQuery {
    /// The EventSource.
    source: Option<String>,
    /// The event name within the EventSource.
    event: Option<String>,
    since: Option<String>,
    limit: Option<usize>,
    #[serde(rename = "continue")]
    continue_token: Option<String>,
    /// Only this bus.
    bus: Option<String>,
}

/// A stored event as the API shows it: the envelope, where it is stored,
/// and when.
fn event_json(bus: &str, stored: &StoredEvent) -> Value {
    let mut v = serde_json::to_value(&stored.event).unwrap_or(Value::Null);
    if let Some(o) = v.as_object_mut() {
        o.insert("bus".into(), json!(bus));
        o.insert("sequence".into(), json!(stored.sequence));
        o.insert("subject".into(), json!(stored.subject));
        o.insert("storedAt".into(), json!(stored.stored_at.to_rfc3339()));
    }
    v
}

/// A continue token: where each bus's next page starts (`bus:sequence,...`).
fn parse_continue(token: &str) -> EventsResult<BTreeMap<String, u64>> {
    token
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|part| {
            let (bus, seq) = part
                .rsplit_once(':')
                .ok_or_else(|| EventsError::Invalid(format!("continue token '{token}' is not one this server gave")))?;
            let seq = seq
                .parse()
                .map_err(|_| EventsError::Invalid(format!("continue token '{token}' is not one this server gave")))?;
            Ok((bus.to_owned(), seq))
        })
        .collect()
}

/// `GET /api/v1/events`: stored events, newest first, across the buses.
async fn list_events(State(s): State<ApiState>, Query(q): Query<EventsQuery>) -> EventsResult<Response> {
    let api = api(&s)?;
    let limit = q
        .limit
        .unwrap_or(DEFAULT_LIMIT)
        .clamp(1, argon_eventbus::history::MAX_PAGE);
    let since = q
        .since
        .as_deref()
        .filter(|t| !t.is_empty())
        .map(parse_since)
        .transpose()?;
    let filter = SubjectFilter {
        source: q.source.filter(|s| !s.is_empty()),
        event: q.event.filter(|s| !s.is_empty()),
    };
    let mut buses = api.buses();
    if let Some(bus) = q.bus.as_deref().filter(|b| !b.is_empty()) {
        buses.retain(|(name, _)| name == bus);
        if buses.is_empty() {
            return Err(EventsError::NotFound(format!("no event bus named '{bus}'")));
        }
    }
    // Each bus from where its last page ended; a bus missing from a token is done.
    let cursors: Vec<(String, Arc<dyn EventBus>, Option<u64>)> =
        match q.continue_token.as_deref().filter(|t| !t.is_empty()) {
            Some(token) => {
                let token = parse_continue(token)?;
                buses
                    .into_iter()
                    .filter_map(|(name, bus)| token.get(&name).map(|seq| (name, bus, Some(*seq))))
                    .collect()
            }
            None => buses.into_iter().map(|(name, bus)| (name, bus, None)).collect(),
        };
    let mut pages = Vec::new();
    for (name, bus, before) in cursors {
        let query = HistoryQuery {
            filter: filter.clone(),
            since,
            before,
            limit,
        };
        pages.push((name, bus.history(&query).await?));
    }
    let mut merged: Vec<(usize, usize)> = pages
        .iter()
        .enumerate()
        .flat_map(|(p, (_, page))| (0..page.events.len()).map(move |i| (p, i)))
        .collect();
    merged.sort_by(|a, b| {
        let (ea, eb) = (&pages[a.0].1.events[a.1], &pages[b.0].1.events[b.1]);
        eb.stored_at.cmp(&ea.stored_at).then(eb.sequence.cmp(&ea.sequence))
    });
    merged.truncate(limit);
    let mut taken = vec![0usize; pages.len()];
    let items: Vec<Value> = merged
        .iter()
        .map(|&(p, i)| {
            taken[p] = taken[p].max(i + 1);
            event_json(&pages[p].0, &pages[p].1.events[i])
        })
        .collect();
    let mut next = Vec::new();
    for (p, (name, page)) in pages.iter().enumerate() {
        let cursor = match page.events.get(taken[p]) {
            // What was not shown comes first on the next page.
            Some(first_left) => Some(first_left.sequence + 1),
            None => page.next,
        };
        if let Some(seq) = cursor {
            next.push(format!("{name}:{seq}"));
        }
    }
    let mut metadata = serde_json::Map::new();
    if !next.is_empty() {
        metadata.insert("continue".into(), json!(next.join(",")));
    }
    Ok(Json(json!({"metadata": metadata, "items": items})).into_response())
}

/// The stored event with `id` and its bus.
async fn find(api: &EventsApi, id: &str) -> EventsResult<(String, Arc<dyn EventBus>, StoredEvent)> {
    for (name, bus) in api.buses() {
        if let Some(stored) = bus.stored_event(id).await? {
            return Ok((name, bus, stored));
        }
    }
    Err(EventsError::NotFound(format!(
        "no stored event with id '{id}' (never accepted, or removed by the bus's retention)"
    )))
}

/// A workflow as an event's page lists it.
fn workflow_summary(wf: &Workflow) -> Value {
    let labels = wf.metadata.labels.clone().unwrap_or_default();
    let label = |k: &str| labels.get(k).cloned();
    json!({
        "namespace": wf.metadata.namespace,
        "name": wf.metadata.name,
        "uid": wf.metadata.uid,
        "phase": wf.status.as_ref().and_then(|s| s.phase),
        "createdAt": wf.metadata.creation_timestamp,
        "sensor": label(LABEL_SENSOR),
        "trigger": label(LABEL_TRIGGER),
        "event": label(LABEL_EVENT),
        "replayOf": label(LABEL_REPLAY_OF),
    })
}

/// The workflows created from event `id`: those it fired (by label), those
/// its replays fired, and those whose annotation names it (multi-dependency
/// triggers), newest first.
async fn workflows_of(s: &ApiState, id: &str, stored_at: DateTime<Utc>) -> EventsResult<Vec<Workflow>> {
    let engine = s.engine.clone();
    let id = id.to_owned();
    let found = tokio::task::spawn_blocking(move || -> Result<Vec<Workflow>, Error> {
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        let mut add = |items: Vec<Workflow>, out: &mut Vec<Workflow>| {
            for wf in items {
                if seen.insert(wf.metadata.uid.clone().unwrap_or_default()) {
                    out.push(wf);
                }
            }
        };
        if valid_label_value(&id) {
            for key in [LABEL_EVENT, LABEL_REPLAY_OF] {
                let options = ListOptions {
                    label_selector: Some(format!("{key}={id}")),
                    limit: Some(1000),
                    ..Default::default()
                };
                add(engine.list_page("", &options)?.items, &mut out);
            }
        }
        let options = ListOptions {
            label_selector: Some(LABEL_SENSOR.to_owned()),
            created_after: Some((stored_at - chrono::Duration::seconds(1)).to_rfc3339()),
            limit: Some(ANNOTATION_SCAN),
            ..Default::default()
        };
        let named: Vec<Workflow> = engine
            .list_page("", &options)?
            .items
            .into_iter()
            .filter(|wf| {
                wf.metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(ANNOTATION_EVENTS))
                    .and_then(|text| serde_json::from_str::<BTreeMap<String, String>>(text).ok())
                    .is_some_and(|ids| ids.values().any(|v| *v == id))
            })
            .collect();
        add(named, &mut out);
        out.sort_by(|a, b| b.metadata.creation_timestamp.cmp(&a.metadata.creation_timestamp));
        Ok(out)
    })
    .await
    .map_err(|e| Error::Unavailable(format!("listing an event's workflows: {e}")))??;
    Ok(found)
}

/// Whether `text` may be a label value (so a label selector can name it).
fn valid_label_value(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 63
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && text.starts_with(|c: char| c.is_ascii_alphanumeric())
        && text.ends_with(|c: char| c.is_ascii_alphanumeric())
}

/// `GET /api/v1/events/{id}`: the event, and the workflows it created.
async fn get_event(State(s): State<ApiState>, Path(id): Path<String>) -> EventsResult<Json<Value>> {
    let api = api(&s)?;
    let (bus, _, stored) = find(api, &id).await?;
    let workflows = workflows_of(&s, &id, stored.stored_at).await?;
    let mut v = event_json(&bus, &stored);
    if let Some(o) = v.as_object_mut() {
        o.insert(
            "workflows".into(),
            Value::Array(workflows.iter().map(workflow_summary).collect()),
        );
    }
    Ok(Json(v))
}

#[derive(Deserialize)]
struct ReplayQuery {
    /// Only this sensor acts on the replay.
    sensor: Option<String>,
}

/// `POST /api/v1/events/{id}/replay[?sensor=NAME]`: publishes a copy of the
/// stored event with a new id (so the triggers fire again) that records
/// the original; with `sensor`, only that sensor acts on it. Answers the
/// new event (201).
async fn replay_event(
    State(s): State<ApiState>,
    Path(id): Path<String>,
    Query(q): Query<ReplayQuery>,
) -> EventsResult<Response> {
    let api = api(&s)?;
    let sensor = q.sensor.filter(|s| !s.is_empty());
    if let Some(name) = &sensor {
        let topology = api.topology();
        if !topology.sensors.iter().any(|s| &s.name == name) {
            let known: Vec<&str> = topology.sensors.iter().map(|s| s.name.as_str()).collect();
            return Err(EventsError::NotFound(format!(
                "no sensor named '{name}' is running (running: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            )));
        }
    }
    let (name, bus, stored) = find(api, &id).await?;
    let replay = stored.event.replay(sensor.as_deref());
    let ack = bus.publish(&replay).await?;
    let stored = StoredEvent {
        sequence: ack.sequence,
        subject: stored.subject,
        stored_at: Utc::now(),
        event: replay,
    };
    Ok((StatusCode::CREATED, Json(event_json(&name, &stored))).into_response())
}

#[derive(Deserialize)]
struct FlowQuery {
    /// Count what happened since (RFC 3339 or a duration; default 24h).
    since: Option<String>,
}

/// `GET /api/v1/event-flow[?since=24h]`: EventSources → Sensors → triggers
/// → workflows as nodes and edges, each edge with a count since `since`:
/// events stored (EventSource → Sensor, by dependency), workflows created
/// (Sensor → trigger → workflows, with their phases).
async fn event_flow(State(s): State<ApiState>, Query(q): Query<FlowQuery>) -> EventsResult<Json<Value>> {
    let api = api(&s)?;
    let since = parse_since(q.since.as_deref().filter(|t| !t.is_empty()).unwrap_or("24h"))?;
    let topology = api.topology();
    // Events per (bus, source, event name).
    let mut counts: HashMap<(String, String, String), u64> = HashMap::new();
    let mut truncated = false;
    for (name, bus) in api.buses() {
        let mut query = HistoryQuery {
            since: Some(since),
            limit: argon_eventbus::history::MAX_PAGE,
            ..Default::default()
        };
        let mut seen = 0;
        loop {
            let page = bus.history(&query).await?;
            for e in &page.events {
                *counts
                    .entry((
                        name.clone(),
                        e.event.context.source.clone(),
                        e.event.context.subject.clone(),
                    ))
                    .or_default() += 1;
            }
            seen += page.events.len();
            match page.next {
                Some(next) if seen < FLOW_EVENTS => query.before = Some(next),
                Some(_) => {
                    truncated = true;
                    break;
                }
                None => break,
            }
        }
    }
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    for es in &topology.event_sources {
        nodes.push(json!({"id": format!("eventsource/{}", es.name), "kind": "EventSource", "name": es.name, "bus": es.bus, "events": es.events}));
    }
    for sensor in &topology.sensors {
        let sensor_id = format!("sensor/{}", sensor.name);
        nodes.push(json!({"id": sensor_id, "kind": "Sensor", "name": sensor.name, "bus": sensor.bus}));
        for dep in &sensor.dependencies {
            let count = counts
                .get(&(
                    sensor.bus.clone(),
                    dep.event_source_name.clone(),
                    dep.event_name.clone(),
                ))
                .copied()
                .unwrap_or(0);
            edges.push(json!({
                "from": format!("eventsource/{}", dep.event_source_name),
                "to": sensor_id,
                "label": format!("{}: {}", dep.name, dep.event_name),
                "dependency": dep.name,
                "event": dep.event_name,
                "count": count,
            }));
        }
        for trigger in &sensor.triggers {
            let trigger_id = format!("trigger/{}/{}", sensor.name, trigger.name);
            let (sensor_name, trigger_name) = (sensor.name.clone(), trigger.name.clone());
            let engine = s.engine.clone();
            let after = since.to_rfc3339();
            let workflows = tokio::task::spawn_blocking(move || {
                let options = ListOptions {
                    label_selector: Some(format!("{LABEL_SENSOR}={sensor_name},{LABEL_TRIGGER}={trigger_name}")),
                    created_after: Some(after),
                    limit: Some(FLOW_WORKFLOWS),
                    ..Default::default()
                };
                engine.list_page("", &options)
            })
            .await
            .map_err(|e| Error::Unavailable(format!("counting workflows: {e}")))??;
            let mut phases: BTreeMap<String, u64> = BTreeMap::new();
            for wf in &workflows.items {
                let phase = wf
                    .status
                    .as_ref()
                    .and_then(|s| s.phase)
                    .map_or_else(|| "Pending".to_owned(), |p| format!("{p:?}"));
                *phases.entry(phase).or_default() += 1;
            }
            let total = workflows.items.len() as u64;
            truncated |= workflows.continue_token.is_some();
            nodes.push(json!({"id": trigger_id, "kind": "Trigger", "name": trigger.name, "sensor": sensor.name, "triggerKind": trigger.kind, "dependencies": trigger.dependencies}));
            edges.push(json!({"from": sensor_id, "to": trigger_id, "count": total}));
            if trigger.kind == "argoWorkflow" || trigger.kind == "k8s" || total > 0 {
                let workflows_id = format!("workflows/{}/{}", sensor.name, trigger.name);
                nodes.push(json!({"id": workflows_id, "kind": "Workflows", "sensor": sensor.name, "trigger": trigger.name, "phases": phases, "selector": format!("{LABEL_SENSOR}={},{LABEL_TRIGGER}={}", sensor.name, trigger.name)}));
                edges.push(json!({"from": trigger_id, "to": workflows_id, "count": total}));
            }
        }
    }
    Ok(Json(json!({
        "since": since.to_rfc3339(),
        "truncated": truncated,
        "nodes": nodes,
        "edges": edges,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_round_trip() {
        let t = parse_continue("default:12,other-bus:3").ok().unwrap();
        assert_eq!(t["default"], 12);
        assert_eq!(t["other-bus"], 3);
        assert!(parse_continue("nonsense").is_err());
    }

    #[test]
    fn conditions_name_the_trigger_dependencies() {
        assert_eq!(
            trigger_dependencies(Some("a && (b || c)"), &["a", "b", "c", "d"]),
            ["a", "b", "c"]
        );
        assert_eq!(trigger_dependencies(None, &["a", "b"]), ["a", "b"]);
    }

    #[test]
    fn since_takes_times_and_durations() {
        let t = parse_since("2026-01-02T03:04:05Z").ok().unwrap();
        assert_eq!(t.to_rfc3339(), "2026-01-02T03:04:05+00:00");
        let back = parse_since("1h").ok().unwrap();
        let diff = Utc::now() - back;
        assert!(diff.num_minutes() >= 59 && diff.num_minutes() <= 61);
        assert!(parse_since("yesterday").is_err());
    }
}
