//! `argon run`: every EventSource, Sensor, WorkflowTemplate,
//! ClusterWorkflowTemplate, CronWorkflow and EventBus under some paths, in
//! one process, with the event bus (embedded unless `--bus`), the workflow
//! engine and its API server. Wiring only: the work is in the library crates.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, Result, bail};
use argon_client::WorkflowClient;
use argon_crds::eventbus::EventBus as EventBusManifest;
use argon_crds::eventsource::EventSource;
use argon_crds::manifest::{Loaded, Manifest, manifest_files};
use argon_crds::secret::Secrets;
use argon_crds::sensor::Sensor;
use argon_engine::events::{EventsApi, Topology};
use argon_engine::{Engine, EngineConfig};
use argon_eventbus::{BusConfig, EventBus};
use argon_eventsource::{EventSourceRunner, RunnerConfig};
use argon_sensor::{SensorRunner, Services};
use clap::Args;
use tokio_util::sync::CancellationToken;

/// Options of `argon run`.
#[derive(Args)]
pub struct RunArgs {
    /// Manifest files or folders (searched for .yaml, .yml and .json).
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Where the engine's store, the artifacts and the embedded bus live.
    #[arg(long, env = "ARGON_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// The event bus: nats://HOST:PORT for NATS JetStream; the embedded bus
    /// under the state dir when not given. An EventBus manifest of the bus's
    /// name among the paths gives its streamConfig, and with
    /// jetstreamExotic its accessSecret and tls (read from --secrets-dir).
    #[arg(long, env = "ARGON_BUS")]
    bus: Option<String>,
    /// Address of the engine's API server (what `argon list`, `argon logs`
    /// talk to; it also serves `/metrics`). A non-loopback one needs a token.
    #[arg(long, env = "ARGON_API_ADDR", default_value = "127.0.0.1:2746")]
    api_addr: SocketAddr,
    /// Directory of secrets: a selector {name, key} reads DIR/name/key.
    #[arg(long, env = "ARGON_SECRETS_DIR")]
    secrets_dir: Option<PathBuf>,
    /// Address the webhook ports are bound on.
    #[arg(long, default_value = "0.0.0.0")]
    host: IpAddr,
    /// Longest wait for the bus to store an event before a webhook answers 503.
    #[arg(long, default_value = "5s", value_parser = argon_crds::time::parse_duration)]
    publish_timeout: Duration,
    /// Also serve `/metrics` and `/health` on this address (no token).
    #[arg(long)]
    metrics_addr: Option<SocketAddr>,
    #[command(flatten)]
    auth: crate::listen::ServerAuthArgs,
    #[command(flatten)]
    listen: crate::listen::ListenArgs,
    #[command(flatten)]
    executor: crate::engine::ExecutorArgs,
}

/// Runs `argon run` until SIGTERM or Ctrl-C.
pub fn dispatch(args: RunArgs) -> ExitCode {
    crate::init_tracing();
    crate::exit_code(crate::block_on(run(args)))
}

/// The manifests `argon run` acts on, after a clean lint.
struct ManifestSet {
    event_sources: Vec<EventSource>,
    sensors: Vec<Sensor>,
    event_buses: Vec<EventBusManifest>,
    loaded: Vec<Loaded>,
}

/// Lints the paths; errors stop here with the lint output.
fn load(paths: &[PathBuf]) -> Result<ManifestSet> {
    // The manifests run together here: clashes between them are errors.
    let report = argon_crds::lint::lint_paths_for(paths, argon_crds::lint::Deployment::Together);
    for d in &report.diagnostics {
        eprintln!("{d}");
    }
    if report.has_errors() {
        bail!("the manifests have errors (listed above); nothing was started");
    }
    let mut set = ManifestSet {
        event_sources: Vec::new(),
        sensors: Vec::new(),
        event_buses: Vec::new(),
        loaded: Vec::new(),
    };
    for l in report.manifests {
        match &l.manifest {
            Manifest::EventSource(es) => set.event_sources.push((**es).clone()),
            Manifest::Sensor(s) => set.sensors.push((**s).clone()),
            Manifest::EventBus(b) => set.event_buses.push((**b).clone()),
            Manifest::Workflow(_) => eprintln!(
                "{}: Workflow '{}' is not started by argon run; submit it with `argon submit {}`",
                l.doc.file,
                l.manifest.name(),
                l.doc.file
            ),
            _ => {}
        }
        set.loaded.push(l);
    }
    Ok(set)
}

/// The buses of a run, one per bus name, opened on first use.
struct Buses {
    state_dir: PathBuf,
    url: Option<String>,
    publish_timeout: Duration,
    /// Where the EventBus manifests' `accessSecret` and `tls` are read from.
    secrets: Secrets,
    open: HashMap<String, Arc<dyn EventBus>>,
    /// The API's view of the buses, told of each one opened.
    events: Arc<EventsApi>,
}

impl Buses {
    async fn get(&mut self, name: &str, manifests: &[EventBusManifest]) -> Result<Arc<dyn EventBus>> {
        if let Some(bus) = self.open.get(name) {
            return Ok(bus.clone());
        }
        let url = match &self.url {
            Some(url) if url.starts_with("embedded:") => {
                bail!("--bus takes nats://HOST:PORT; leave it out for the embedded bus")
            }
            Some(url) => url.clone(),
            None => format!("embedded:{}", self.state_dir.join("bus").join(name).display()),
        };
        let manifest = manifests.iter().find(|b| b.metadata.name.as_deref() == Some(name));
        let mut config = crate::bus::bus_config(Some(&url), manifest, &self.secrets)?;
        match &mut config {
            BusConfig::Embedded(c) => c.name = name.to_string(),
            BusConfig::JetStream(c) => {
                c.name = name.to_string();
                c.publish_timeout = self.publish_timeout;
            }
        }
        let bus = argon_eventbus::open_config(config)
            .await
            .with_context(|| format!("cannot open event bus '{name}'"))?;
        self.open.insert(name.to_string(), bus.clone());
        self.events.set_bus(name, bus.clone());
        Ok(bus)
    }
}

/// The event sources and sensors of one version of the manifests.
struct Running {
    shutdown: CancellationToken,
    event_sources: Vec<argon_eventsource::Running>,
    sensors: Vec<SensorRunner>,
}

impl Running {
    async fn stop(self) {
        self.shutdown.cancel();
        for es in self.event_sources {
            if let Err(e) = es.wait().await {
                tracing::warn!(error = %e, "event source stopped with an error");
            }
        }
        for s in self.sensors {
            s.wait().await;
        }
    }
}

async fn start(
    set: &ManifestSet,
    buses: &mut Buses,
    engine: &Arc<Engine>,
    secrets: &Secrets,
    config: &RunnerConfig,
    sensor_metrics: &argon_sensor::metrics::Metrics,
) -> Result<Running> {
    for l in &set.loaded {
        let namespace = l.doc.value["metadata"]["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_string();
        match &l.manifest {
            Manifest::WorkflowTemplate(t) => {
                engine.put_workflow_template(&namespace, (**t).clone())?;
            }
            Manifest::ClusterWorkflowTemplate(t) => {
                engine.put_cluster_workflow_template((**t).clone())?;
            }
            Manifest::CronWorkflow(c) => {
                engine.put_cron_workflow(&namespace, (**c).clone())?;
            }
            _ => {}
        }
    }
    buses
        .events
        .set_topology(Topology::of(&set.event_sources, &set.sensors));
    let shutdown = CancellationToken::new();
    let mut running = Running {
        shutdown: shutdown.clone(),
        event_sources: Vec::new(),
        sensors: Vec::new(),
    };

    let mut by_bus: BTreeMap<String, Vec<EventSource>> = BTreeMap::new();
    for es in &set.event_sources {
        let name = es.spec.event_bus_name.clone().unwrap_or_else(|| "default".to_string());
        by_bus.entry(name).or_default().push(es.clone());
    }
    for (bus_name, sources) in by_bus {
        let bus = buses.get(&bus_name, &set.event_buses).await?;
        let started = EventSourceRunner::start(&sources, bus, secrets, config.clone(), shutdown.child_token()).await;
        match started {
            Ok(es) => {
                for endpoint in es.endpoints() {
                    println!("{endpoint}");
                }
                running.event_sources.push(es);
            }
            Err(e) => {
                running.stop().await;
                return Err(e.into());
            }
        }
    }
    let client: Arc<dyn WorkflowClient> = engine.clone();
    for sensor in &set.sensors {
        let bus = buses.get(sensor.spec.event_bus(), &set.event_buses).await?;
        let services = Services {
            bus,
            client: Some(client.clone()),
            secrets: secrets.clone(),
            metrics: sensor_metrics.clone(),
        };
        match SensorRunner::start(sensor, services, shutdown.child_token()).await {
            Ok(runner) => {
                println!("sensor {} listening", sensor.metadata.name.clone().unwrap_or_default());
                running.sensors.push(runner);
            }
            Err(e) => {
                running.stop().await;
                return Err(e.into());
            }
        }
    }
    Ok(running)
}

async fn run(args: RunArgs) -> Result<()> {
    let auth = args.auth.resolve(args.api_addr)?;
    crate::listen::raise_fd_limit();
    let limits = args.listen.limits();
    let set = load(&args.paths)?;
    let state_dir = args.state_dir.clone().unwrap_or_else(crate::engine::default_state_dir);
    std::fs::create_dir_all(&state_dir).with_context(|| format!("cannot create {}", state_dir.display()))?;
    let secrets = Secrets::new(args.secrets_dir.clone());

    let mut config = EngineConfig::new(&state_dir);
    config.secrets = secrets.clone();
    args.executor.configure(&mut config, &args.paths).await?;
    let engine = Engine::open(config).with_context(|| format!("opening the engine in {}", state_dir.display()))?;
    eprintln!("argon: {}", engine.executor_description());

    let shutdown = CancellationToken::new();
    tokio::spawn(crate::stop_on_signal(shutdown.clone()));

    let listener = tokio::net::TcpListener::bind(args.api_addr).await.with_context(|| {
        format!(
            "cannot listen on {} for the API server (choose another with --api-addr)",
            args.api_addr
        )
    })?;
    let api_addr = listener.local_addr()?;
    let shown = ShownMetrics::default();
    let events = Arc::new(EventsApi::new());
    let render: argon_eventsource::server::RenderMetrics = {
        let shown = shown.clone();
        Arc::new(move || shown.render())
    };
    if let Some(addr) = args.metrics_addr {
        let local = argon_eventsource::server::serve_metrics(addr, render.clone(), limits, shutdown.clone()).await?;
        println!("metrics http://{local}/metrics");
    }
    let app = argon_engine::server::router(argon_engine::server::ApiState {
        engine: engine.clone(),
        auth,
        metrics: Some(render.clone()),
        events: Some(events.clone()),
    })
    // The web UI, outside the API's token check (its files hold no data).
    .merge(argon_ui::router::<()>());
    let api = {
        let token = shutdown.clone();
        tokio::spawn(argon_eventsource::listener::serve(
            listener,
            None,
            app,
            limits,
            token,
            crate::engine::API_DRAIN,
        ))
    };
    let engine_task = {
        let token = shutdown.clone();
        tokio::spawn(argon_engine::serve(Arc::clone(&engine), token.cancelled_owned()))
    };
    println!("api http://{api_addr} (argon list --server http://{api_addr})");

    let runner_config = RunnerConfig {
        publish_timeout: args.publish_timeout,
        host: args.host,
        limits,
        ..RunnerConfig::default()
    };
    let mut buses = Buses {
        state_dir: state_dir.clone(),
        url: args.bus.clone(),
        publish_timeout: args.publish_timeout,
        secrets: secrets.clone(),
        open: HashMap::new(),
        events: events.clone(),
    };
    let started = start(&set, &mut buses, &engine, &secrets, &runner_config, &shown.sensors).await?;
    shown.show(&started);
    let mut running = Some(started);
    println!("argon run: ready (state in {})", state_dir.display());

    // Polling a handful of manifest files once a second is cheap and works on
    // every file system (inotify misses edits on some mounts); a change
    // re-lints the set and restarts event sources and sensors with it.
    let mut seen = snapshot(&args.paths).unwrap_or_default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
        }
        // Unreadable now (out of descriptors, a mount gone): no news, not a change.
        let Some(now) = snapshot(&args.paths) else {
            continue;
        };
        if now == seen {
            continue;
        }
        seen = now;
        eprintln!("argon run: manifests changed; reloading");
        let set = match load(&args.paths) {
            Ok(set) => set,
            Err(e) => {
                eprintln!("argon run: not reloaded, still running the previous manifests: {e:#}");
                continue;
            }
        };
        match argon_engine::artifacts::repository::config_maps(&args.paths) {
            Ok(maps) => engine.set_config_maps(maps),
            Err(e) => eprintln!("argon run: artifact repositories not reloaded: {e}"),
        }
        if let Some(old) = running.take() {
            old.stop().await;
        }
        match start(&set, &mut buses, &engine, &secrets, &runner_config, &shown.sensors).await {
            Ok(r) => {
                shown.show(&r);
                running = Some(r);
                println!("argon run: reloaded");
            }
            Err(e) => eprintln!(
                "argon run: reload failed, event sources and sensors are stopped until the next change: {e:#}"
            ),
        }
    }
    eprintln!("argon run: stopping: finishing requests and triggers in flight");
    if let Some(r) = running.take() {
        r.stop().await;
    }
    api.await.context("API server task")?.context("API server")?;
    engine_task.await.context("engine task")??;
    Ok(())
}

/// The metrics of the event sources and sensors running now, for `/metrics`
/// (a reload replaces the event sources').
#[derive(Clone, Default)]
struct ShownMetrics {
    sources: Arc<std::sync::Mutex<Vec<argon_eventsource::Metrics>>>,
    sensors: argon_sensor::metrics::Metrics,
}

impl ShownMetrics {
    fn show(&self, running: &Running) {
        if let Ok(mut sources) = self.sources.lock() {
            *sources = running.event_sources.iter().map(|es| es.metrics().clone()).collect();
        }
    }

    fn render(&self) -> String {
        let mut text: String = match self.sources.lock() {
            Ok(sources) => sources.iter().map(|m| m.render()).collect(),
            Err(_) => String::new(),
        };
        text.push_str(&self.sensors.render());
        text
    }
}

/// The manifest files under `paths` with their modification times; `None`
/// when they cannot be read now.
fn snapshot(paths: &[PathBuf]) -> Option<Vec<(PathBuf, Option<SystemTime>)>> {
    manifest_files(paths)
        .ok()?
        .into_iter()
        .map(|f| {
            let modified = std::fs::metadata(&f).and_then(|m| m.modified());
            match modified {
                Ok(m) => Some((f, Some(m))),
                // Deleted: a change. Any other failure: unknown.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some((f, None)),
                Err(_) => None,
            }
        })
        .collect()
}
