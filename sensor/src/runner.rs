//! The running sensor: one durable consumer per dependency, each delivery
//! transformed, filtered, offered to the conditions of the triggers that
//! depend on it, and acknowledged only after every trigger it completed has
//! fired or gone to its DLQ trigger.
//!
//! Delivery guarantee. An event is acknowledged only after its firings
//! succeeded — whether or not the trigger says `atLeastOnce: true` (the
//! manifest field is accepted; Argon always behaves as if it were set).
//! A firing that failed with a transient error is delivered again (nak with
//! a delay); one that can never succeed (an invalid workflow, a 4xx not in
//! the allow list) goes to its DLQ trigger if any, else the event is
//! terminated with an error log and the failure metric.
//!
//! Never twice. Every firing carries an idempotency key derived from the
//! sensor, the trigger and the ids of the events used. A crash after a
//! firing but before the acknowledgement redelivers the event and fires
//! again with the same key: the engine returns the workflow it already
//! created, a Kubernetes object gets the same name, and an HTTP receiver
//! sees the same `Idempotency-Key` header. Exactly once at an HTTP sink
//! therefore holds for receivers that de-duplicate on that header; for the
//! others the guarantee is at least once.
//!
//! Replays. A replayed event has an id of its own, so it fires again; one
//! aimed at another sensor (`argonsensor`) is acknowledged without acting.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use argon_client::WorkflowClient;
use argon_crds::secret::Secrets;
use argon_crds::sensor::{Sensor, TriggerKind};
use argon_eventbus::{ConsumerSpec, Delivery, EventBus, SubjectFilter, consumer_name, kv_bucket_name};
use futures::StreamExt;
use tokio::sync::{Mutex, Semaphore};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::conditions::{StateStore, Step};
use crate::metrics::Metrics;
use crate::params::Events;
use crate::ratelimit::RateLimiter;
use crate::retry::Retry;
use crate::sensor::{CompiledSensor, CompiledTrigger};
use crate::triggers::{self, Request};
use crate::{Error, Result, SensorEvent};

/// Tuning of a running sensor.
#[derive(Clone, Debug)]
pub struct RunnerOptions {
    /// How long a delivery may stay unacknowledged before the bus redelivers
    /// it: how soon the events in flight at a crash come back. Short (3 s by
    /// default) because a delivery being fired is kept alive by in-progress
    /// acks every third of it (see `handle`), however long its trigger runs.
    pub ack_wait: Duration,
    /// Deliveries handled at once per dependency.
    pub in_flight: usize,
}

impl Default for RunnerOptions {
    fn default() -> Self {
        RunnerOptions {
            ack_wait: Duration::from_secs(3),
            in_flight: 256,
        }
    }
}

/// What a sensor needs from its host process.
#[derive(Clone)]
pub struct Services {
    /// Where events come from and condition state is kept.
    pub bus: Arc<dyn EventBus>,
    /// The workflow engine (in process or remote); needed by workflow triggers.
    pub client: Option<Arc<dyn WorkflowClient>>,
    /// Where secrets are read from.
    pub secrets: Secrets,
    /// Where metrics are recorded.
    pub metrics: Metrics,
}

/// Runtime pieces of one trigger (and, recursively, its DLQ trigger).
struct TriggerRuntime {
    retry: Retry,
    limiter: Option<RateLimiter>,
    http: Option<triggers::client::HttpClient>,
    logger: triggers::log::Logger,
    lock: Mutex<()>,
}

struct Inner {
    sensor: CompiledSensor,
    services: Services,
    store: Option<StateStore>,
    runtimes: HashMap<String, TriggerRuntime>,
    nats: triggers::nats::Publisher,
    slack: triggers::slack::Poster,
    kube: Option<triggers::k8s::Kube>,
}

/// A started sensor.
pub struct SensorRunner {
    tasks: JoinSet<()>,
    shutdown: CancellationToken,
}

impl SensorRunner {
    /// Compiles the sensor, checks what it needs (engine, cluster, sources),
    /// opens its consumers and starts handling events until `shutdown`.
    pub async fn start(sensor: &Sensor, services: Services, shutdown: CancellationToken) -> Result<SensorRunner> {
        Self::start_with(sensor, services, RunnerOptions::default(), shutdown).await
    }

    /// [`SensorRunner::start`] with explicit options.
    pub async fn start_with(
        sensor: &Sensor,
        services: Services,
        options: RunnerOptions,
        shutdown: CancellationToken,
    ) -> Result<SensorRunner> {
        let mut compiled = CompiledSensor::compile(sensor, services.secrets.clone())?;
        compiled.fetch_sources().await?;
        let name = compiled.identity.name.clone();
        let needs_cluster = compiled.needs_cluster();
        let kube = match needs_cluster.first() {
            Some(t) => Some(triggers::k8s::Kube::connect().await.map_err(|e| {
                Error::config(
                    &name,
                    format!(
                        "trigger '{t}' creates a Kubernetes object that is not a Workflow, which needs a cluster: {e}; \
                         use an argoproj.io Workflow resource or an http trigger to run without one"
                    ),
                )
            })?),
            None => None,
        };
        let mut runtimes = HashMap::new();
        for t in &compiled.triggers {
            add_runtime(&compiled, t, &mut runtimes)?;
            if services.client.is_none() && needs_engine(t) {
                return Err(Error::config(
                    &name,
                    format!(
                        "trigger '{}' submits workflows: give the engine with --server URL (or run it in `argon run`)",
                        t.name
                    ),
                ));
            }
        }
        let store = if compiled.triggers.iter().any(|t| t.dependencies.len() > 1) {
            Some(StateStore::new(services.bus.kv(&kv_bucket_name(&name)).await?))
        } else {
            None
        };
        let inner = Arc::new(Inner {
            sensor: compiled,
            services,
            store,
            runtimes,
            nats: Default::default(),
            slack: triggers::slack::Poster::new()?,
            kube,
        });
        let mut tasks = JoinSet::new();
        for dep in &inner.sensor.dependencies {
            let spec = ConsumerSpec::new(consumer_name(&name, &dep.spec.name))
                .filter(SubjectFilter::new(&dep.spec.event_source_name, &dep.spec.event_name))
                .ack_wait(options.ack_wait)
                .max_deliver(None);
            tasks.spawn(consume(
                inner.clone(),
                dep.spec.name.clone(),
                spec,
                options.in_flight,
                shutdown.clone(),
            ));
        }
        for t in &inner.sensor.triggers {
            if !t.resets.is_empty() && t.dependencies.len() > 1 {
                tasks.spawn(reset_loop(inner.clone(), t.name.clone(), shutdown.clone()));
            }
        }
        tracing::info!(sensor = %name, dependencies = inner.sensor.dependencies.len(), triggers = inner.sensor.triggers.len(), "sensor started");
        Ok(SensorRunner { tasks, shutdown })
    }

    /// Stops the sensor and waits for its tasks (in-flight firings finish or
    /// are abandoned unacknowledged, to be redelivered).
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        while self.tasks.join_next().await.is_some() {}
    }

    /// Waits until the sensor stops (after `shutdown`).
    pub async fn wait(mut self) {
        while self.tasks.join_next().await.is_some() {}
    }
}

fn needs_engine(t: &CompiledTrigger) -> bool {
    let own = matches!(
        t.spec.template.kind(),
        Some(TriggerKind::ArgoWorkflow(_) | TriggerKind::K8s(_))
    );
    own || t.dlq.as_deref().is_some_and(needs_engine)
}

fn add_runtime(sensor: &CompiledSensor, t: &CompiledTrigger, out: &mut HashMap<String, TriggerRuntime>) -> Result<()> {
    let http = match t.spec.template.kind() {
        Some(TriggerKind::Http(h)) => Some(triggers::http::client(&t.name, h, &sensor.secrets)?),
        _ => None,
    };
    out.insert(
        t.name.clone(),
        TriggerRuntime {
            retry: Retry::from_backoff(t.spec.retry_strategy.as_ref()),
            limiter: RateLimiter::new(t.spec.rate_limit.as_ref()),
            http,
            logger: Default::default(),
            lock: Mutex::new(()),
        },
    );
    if let Some(dlq) = &t.dlq {
        add_runtime(sensor, dlq, out)?;
    }
    Ok(())
}

/// Reads one dependency's consumer, resubscribing after bus failures.
async fn consume(
    inner: Arc<Inner>,
    dependency: String,
    spec: ConsumerSpec,
    in_flight: usize,
    shutdown: CancellationToken,
) {
    let sensor = inner.sensor.identity.name.clone();
    let permits = Arc::new(Semaphore::new(in_flight.max(1)));
    let mut handlers = JoinSet::new();
    let mut backoff = Duration::from_millis(100);
    'outer: loop {
        let subscribed = tokio::select! {
            _ = shutdown.cancelled() => break,
            s = inner.services.bus.subscribe(&spec) => s,
        };
        match subscribed {
            Ok(mut sub) => loop {
                // A permit first, then a delivery: a delivery never waits
                // for a handler, its ack wait running, while all are busy.
                let permit = tokio::select! {
                    _ = shutdown.cancelled() => break 'outer,
                    p = permits.clone().acquire_owned() => p,
                };
                let Ok(permit) = permit else {
                    break 'outer;
                };
                let next = tokio::select! {
                    _ = shutdown.cancelled() => break 'outer,
                    n = sub.next() => n,
                };
                match next {
                    Some(Ok(delivery)) => {
                        backoff = Duration::from_millis(100);
                        let (inner, dependency) = (inner.clone(), dependency.clone());
                        let ack_wait = spec.ack_wait;
                        handlers.spawn(async move {
                            handle(&inner, &dependency, delivery, ack_wait).await;
                            drop(permit);
                        });
                        while handlers.try_join_next().is_some() {}
                    }
                    Some(Err(e)) => {
                        tracing::warn!(sensor = %sensor, dependency = %dependency, error = %e, "bus subscription failed; resubscribing");
                        break;
                    }
                    None => {
                        tracing::warn!(sensor = %sensor, dependency = %dependency, "bus subscription ended; resubscribing");
                        break;
                    }
                }
            },
            Err(e) => {
                tracing::warn!(sensor = %sensor, dependency = %dependency, error = %e, "cannot subscribe; retrying")
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
    // In-flight handlers are dropped unsettled: their events come back.
    handlers.abort_all();
    while handlers.join_next().await.is_some() {}
}

/// How an event's firings ended.
enum Outcome {
    Done,
    Retry(String),
    Poison(String),
}

/// Handles one delivery. While its firings run (an HTTP trigger retrying a
/// slow sink can take longer than the ack wait), the bus is told every third
/// of the ack wait that the event is still in progress, so it is not
/// delivered again, to be fired twice at once, while the first is running.
async fn handle(inner: &Inner, dependency: &str, delivery: Delivery, ack_wait: Duration) {
    let sensor = &inner.sensor.identity.name;
    let outcome = {
        let work = process(inner, dependency, &delivery);
        tokio::pin!(work);
        let beat = ack_wait / 3;
        let mut beats = tokio::time::interval_at(tokio::time::Instant::now() + beat, beat);
        beats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                outcome = &mut work => break outcome,
                _ = beats.tick() => {
                    if let Err(e) = delivery.in_progress().await {
                        tracing::warn!(sensor = %sensor, dependency, error = %e, "cannot extend the ack wait of an event still being fired");
                    }
                }
            }
        }
    };
    let settled = match outcome {
        Outcome::Done => delivery.ack().await,
        Outcome::Retry(reason) => {
            let delay = Duration::from_millis((500 * delivery.delivered.min(20)).max(500));
            tracing::warn!(sensor = %sensor, dependency, event = %delivery.event.context.id, delivered = delivery.delivered, reason = %reason, "firing failed; the event will be delivered again");
            delivery.nak(Some(delay)).await
        }
        Outcome::Poison(reason) => {
            tracing::error!(sensor = %sensor, dependency, event = %delivery.event.context.id, reason = %reason, "firing failed for good and there is no DLQ trigger; the event is dropped");
            delivery.term().await
        }
    };
    if let Err(e) = settled {
        tracing::warn!(sensor = %sensor, dependency, error = %e, "cannot settle the delivery; it will come back");
    }
}

/// Offers the event to every trigger that depends on `dependency` and fires
/// the ones it completes.
async fn process(inner: &Inner, dependency: &str, delivery: &Delivery) -> Outcome {
    let sensor = &inner.sensor.identity.name;
    let metrics = &inner.services.metrics;
    let Some(dep) = inner.sensor.dependency(dependency) else {
        return Outcome::Done;
    };
    // A replay aimed at another sensor: not ours to act on.
    if !delivery.event.is_for_sensor(sensor) {
        tracing::debug!(sensor = %sensor, dependency, event = %delivery.event.context.id, "replay for another sensor acknowledged without acting");
        return Outcome::Done;
    }
    let event = SensorEvent::from_event(&delivery.event);
    let event = match dep.accept(&event) {
        Ok(Some(e)) => {
            metrics.events.with_label_values(&[sensor, dependency, "passed"]).inc();
            e
        }
        Ok(None) => {
            metrics
                .events
                .with_label_values(&[sensor, dependency, "filtered"])
                .inc();
            return Outcome::Done;
        }
        Err(e) => {
            metrics.events.with_label_values(&[sensor, dependency, "error"]).inc();
            tracing::debug!(sensor = %sensor, dependency, error = %e, "event rejected by a filter error");
            return Outcome::Done;
        }
    };
    let mut outcome = Outcome::Done;
    for t in inner
        .sensor
        .triggers
        .iter()
        .filter(|t| t.dependencies.iter().any(|d| d == dependency))
    {
        let result = if t.dependencies.len() == 1 {
            let mut events = Events::new();
            events.insert(dependency.to_owned(), event.clone());
            fire_with_dlq(inner, t, &events).await
        } else {
            offer(inner, t, dependency, &event).await
        };
        match result {
            Ok(()) => {}
            Err(e) if e.is_retryable() => outcome = Outcome::Retry(e.to_string()),
            Err(e) => {
                if !matches!(outcome, Outcome::Retry(_)) {
                    outcome = Outcome::Poison(e.to_string());
                }
            }
        }
    }
    outcome
}

/// A multi-dependency trigger: store the event in the condition state, fire
/// when complete, clear the state once fired. One at a time per trigger.
async fn offer(inner: &Inner, t: &CompiledTrigger, dependency: &str, event: &SensorEvent) -> Result<()> {
    let (Some(store), Some(rt)) = (&inner.store, inner.runtimes.get(&t.name)) else {
        return Err(Error::permanent(&t.name, "no condition state store"));
    };
    let _guard = rt.lock.lock().await;
    let (mut state, _) = store.load(&t.name).await?;
    match state.offer(&t.condition, dependency, event) {
        Step::AlreadyFired => Ok(()),
        Step::Stored => {
            store.save(&t.name, &state).await?;
            Ok(())
        }
        Step::Fire(events) => match fire_with_dlq(inner, t, &events).await {
            Ok(()) => {
                state.fired(&events);
                store.save(&t.name, &state).await?;
                Ok(())
            }
            Err(e) => {
                // Keep this half too: the redelivered event completes the condition again.
                store.save(&t.name, &state).await?;
                Err(e)
            }
        },
    }
}

/// Fires a trigger with its retries; when it fails for good, its DLQ trigger.
async fn fire_with_dlq(inner: &Inner, t: &CompiledTrigger, events: &Events) -> Result<()> {
    match fire(inner, t, events).await {
        Ok(()) => Ok(()),
        Err(e) => match &t.dlq {
            Some(dlq) => {
                tracing::warn!(sensor = %inner.sensor.identity.name, trigger = %t.name, dlq = %dlq.name, error = %e, "trigger failed; firing its DLQ trigger");
                Box::pin(fire_with_dlq(inner, dlq, events)).await
            }
            None => Err(e),
        },
    }
}

/// Fires a trigger once, with its rate limit and retry strategy.
async fn fire(inner: &Inner, t: &CompiledTrigger, events: &Events) -> Result<()> {
    let sensor = &inner.sensor.identity.name;
    let metrics = &inner.services.metrics;
    let labels = [sensor.as_str(), t.name.as_str()];
    let Some(rt) = inner.runtimes.get(&t.name) else {
        return Err(Error::permanent(&t.name, "trigger not started"));
    };
    if let Some(limiter) = &rt.limiter {
        limiter.acquire().await;
    }
    let started = Instant::now();
    let (request, key) = match inner.sensor.prepare(t, events, false) {
        Ok(r) => r,
        Err(e) => {
            metrics.failed.with_label_values(&labels).inc();
            return Err(match e {
                Error::Trigger { .. } => e,
                other => Error::permanent(&t.name, other.to_string()),
            });
        }
    };
    let mut attempt = 1;
    let result = loop {
        match execute(inner, t, rt, &request, &key, events).await {
            Ok(()) => break Ok(()),
            Err(e) if e.is_retryable() && attempt < rt.retry.steps => {
                tokio::time::sleep(rt.retry.delay(attempt)).await;
                attempt += 1;
            }
            Err(e) => break Err(e),
        }
    };
    metrics
        .duration
        .with_label_values(&labels)
        .observe(started.elapsed().as_secs_f64() * 1000.0);
    match &result {
        Ok(()) => metrics.triggered.with_label_values(&labels).inc(),
        Err(_) => {
            metrics.failed.with_label_values(&labels).inc();
            if rt.retry.steps > 1 {
                metrics.retries_failed.with_label_values(&labels).inc();
            }
        }
    }
    result
}

async fn execute(
    inner: &Inner,
    t: &CompiledTrigger,
    rt: &TriggerRuntime,
    request: &Request,
    key: &str,
    events: &Events,
) -> Result<()> {
    let sensor = &inner.sensor.identity.name;
    match request {
        Request::Workflow { .. } => {
            let client = inner
                .services
                .client
                .as_deref()
                .ok_or_else(|| Error::permanent(&t.name, "no workflow engine configured"))?;
            let lineage = triggers::workflow::Lineage::of(sensor, &t.name, events);
            let wf = triggers::workflow::execute(&t.name, client, request, key, &lineage).await?;
            tracing::debug!(sensor = %sensor, trigger = %t.name, workflow = %wf, "workflow submitted");
            Ok(())
        }
        Request::Http { .. } => {
            let client = rt
                .http
                .as_ref()
                .ok_or_else(|| Error::permanent(&t.name, "no HTTP client"))?;
            triggers::http::execute(&t.name, client, request).await.map(|_| ())
        }
        Request::Log { .. } => {
            let interval = t.spec.template.log.as_ref().and_then(|l| l.interval_seconds);
            rt.logger.execute(sensor, &t.name, interval, request);
            Ok(())
        }
        Request::Nats { .. } => inner.nats.execute(&t.name, request, key).await,
        Request::Slack { .. } => inner.slack.execute(&t.name, request).await,
        Request::Email { .. } => triggers::email::execute(&t.name, request, key).await,
        Request::K8s { .. } => match &inner.kube {
            Some(kube) => kube.execute(&t.name, request).await,
            None => Err(Error::permanent(&t.name, "no Kubernetes API configured")),
        },
    }
}

/// Clears a trigger's half-met state on its `conditionsReset.byTime` schedules.
async fn reset_loop(inner: Arc<Inner>, trigger: String, shutdown: CancellationToken) {
    let Some(t) = inner.sensor.triggers.iter().find(|t| t.name == trigger) else {
        return;
    };
    let (Some(store), Some(rt)) = (&inner.store, inner.runtimes.get(&trigger)) else {
        return;
    };
    loop {
        let now = chrono::Utc::now();
        let Some(next) = t.resets.iter().filter_map(|r| r.next_after(now)).min() else {
            return;
        };
        let wait = (next - now).to_std().unwrap_or_default();
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(wait) => {}
        }
        let _guard = rt.lock.lock().await;
        if let Err(e) = store.reset(&trigger).await {
            tracing::warn!(sensor = %inner.sensor.identity.name, trigger = %trigger, error = %e, "cannot reset conditions");
        }
    }
}
