//! Daemon steps (`daemon: true`) on the container executor: the pod starts
//! as any step's does, its logs stream while it runs, and the step counts
//! as done once its main container is ready (its readiness probe passed,
//! else once it runs). Later steps reach it by its address
//! (`{{steps.NAME.ip}}`) or by the step's name on the workflow's network.
//! The operator stops it when the template that started it ends.

use std::time::{Duration, Instant};

use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::ContainerInspectResponse;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Probe;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio_util::sync::CancellationToken;

use super::{ContainerBackend, runtime_message, stream_logs};
use crate::executor::{LogSink, StepOutcome, StepProcess};

impl ContainerBackend {
    /// Starts a daemon's pod, or re-attaches to the one an engine that
    /// stopped left running, and waits until it is ready: its address.
    pub(super) async fn start_daemon_pod(
        &self,
        step: &StepProcess,
        logs: LogSink,
        cancel: CancellationToken,
    ) -> Result<String, StepOutcome> {
        if let Some(p) = &step.main.readiness_probe
            && p.exec.is_none()
            && p.http_get.is_none()
            && p.tcp_socket.is_none()
        {
            return Err(StepOutcome::not_started(
                "readinessProbe: only exec, httpGet and tcpSocket probes are supported",
            ));
        }
        if step.main.image.is_none() {
            return Err(StepOutcome::not_started("the container has no image"));
        }
        let main = Self::container_name(&step.owner, "main");
        let reattached = match step.resumed {
            false => false,
            true => match self.existing(&main).await {
                Ok(Some(true)) => true,
                Ok(Some(false)) => {
                    self.clean_up(step).await;
                    false
                }
                Ok(None) => false,
                Err(e) => return Err(StepOutcome::not_started(e)),
            },
        };
        if !reattached && let Err(out) = self.start_pod(step, &logs, &cancel).await {
            self.clean_up(step).await;
            return Err(out);
        }
        let task = stream_logs(self.docker.clone(), &main, logs, None, true);
        if let Some(old) = self.daemon_logs.lock().expect("daemon logs").insert(main.clone(), task) {
            old.abort();
        }
        match self.wait_ready(step, &main, &cancel).await {
            Ok(ip) => Ok(ip),
            Err(mut out) => {
                let ended = self.stop_daemon_pod(step).await;
                out.exit_code = out.exit_code.or(ended.exit_code);
                out.result = ended.result;
                if let Some(reason) = &mut out.reason
                    && !ended.last_stderr.is_empty()
                {
                    reason.push_str(": ");
                    reason.push_str(&ended.last_stderr);
                }
                out.last_stderr = ended.last_stderr;
                Err(out)
            }
        }
    }

    /// Stops a daemon's pod and removes it; the outcome has an exit code
    /// when the daemon had ended by itself.
    pub(super) async fn stop_daemon_pod(&self, step: &StepProcess) -> StepOutcome {
        let main = Self::container_name(&step.owner, "main");
        let mut out = StepOutcome::default();
        if let Ok(c) = self.inspect(&main).await {
            let s = c.state.unwrap_or_default();
            if s.running == Some(false) && s.finished_at.as_deref().is_some_and(|t| !t.starts_with("0001")) {
                out.exit_code = s.exit_code.map(|c| c as i32);
                if s.oom_killed == Some(true) {
                    out.reason = Some("OOMKilled".to_string());
                }
            }
        }
        self.kill(&main).await;
        let task = self.daemon_logs.lock().expect("daemon logs").remove(&main);
        if let Some(task) = task
            && let Ok(Ok(((result, _), (_, last_err)))) = tokio::time::timeout(Duration::from_secs(10), task).await
        {
            out.result = result;
            out.last_stderr = last_err;
        }
        self.clean_up(step).await;
        out
    }

    /// Waits until the daemon's main container is ready; its address.
    async fn wait_ready(
        &self,
        step: &StepProcess,
        main: &str,
        cancel: &CancellationToken,
    ) -> Result<String, StepOutcome> {
        let probe = step.main.readiness_probe.as_ref();
        let seconds = |v: Option<i32>, default: i32| Duration::from_secs(v.unwrap_or(default).max(0) as u64);
        let period = seconds(probe.and_then(|p| p.period_seconds), 10).max(Duration::from_millis(100));
        let probe_timeout = seconds(probe.and_then(|p| p.timeout_seconds), 1).max(Duration::from_millis(100));
        let started = Instant::now();
        let mut next_probe = started + seconds(probe.and_then(|p| p.initial_delay_seconds), 0);
        loop {
            let c = self.inspect(main).await.map_err(|e| {
                StepOutcome::not_started(format!("the daemon's container vanished: {}", runtime_message(&e)))
            })?;
            let state = c.state.clone().unwrap_or_default();
            if state.running != Some(true) {
                return Err(StepOutcome {
                    exit_code: state.exit_code.map(|c| c as i32),
                    reason: Some("the daemon ended before it was ready".to_string()),
                    ..Default::default()
                });
            }
            let ip = self.address(step, &c).await.map_err(StepOutcome::not_started)?;
            if Instant::now() >= next_probe {
                let ready = match probe {
                    None => true,
                    Some(p) => self.probe(main, p, &ip, probe_timeout).await,
                };
                if ready {
                    return Ok(ip);
                }
                next_probe = Instant::now() + period;
            }
            if step.timeout.is_some_and(|t| started.elapsed() >= t) {
                return Err(StepOutcome {
                    timed_out: true,
                    ..Default::default()
                });
            }
            let pause = next_probe
                .saturating_duration_since(Instant::now())
                .clamp(Duration::from_millis(10), Duration::from_millis(200));
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = cancel.cancelled() => {
                    return Err(StepOutcome { cancelled: true, ..Default::default() });
                }
            }
        }
    }

    /// The daemon's address on the workflow's network: that of the
    /// container owning the pod's network namespace (its first sidecar, else
    /// the main container); loopback on the host network.
    async fn address(&self, step: &StepProcess, main: &ContainerInspectResponse) -> Result<String, String> {
        if step.host_network {
            return Ok("127.0.0.1".to_string());
        }
        let owner = if step.sidecars.is_empty() {
            main.clone()
        } else {
            let name = Self::container_name(&step.owner, "sidecar-0");
            self.inspect(&name)
                .await
                .map_err(|e| format!("the daemon's sidecar vanished: {}", runtime_message(&e)))?
        };
        let network = format!("argon-{}", step.owner.workflow_uid);
        let networks = owner.network_settings.and_then(|n| n.networks).unwrap_or_default();
        let ip = networks
            .get(&network)
            .or_else(|| networks.values().next())
            .and_then(|e| e.ip_address.clone())
            .filter(|ip| !ip.is_empty());
        ip.ok_or_else(|| format!("the daemon has no address on the workflow's network {network}"))
    }

    /// One readiness probe: whether it passed within `timeout`.
    async fn probe(&self, main: &str, p: &Probe, ip: &str, timeout: Duration) -> bool {
        let attempt = async {
            if let Some(exec) = &p.exec {
                return self.probe_exec(main, exec.command.clone().unwrap_or_default()).await;
            }
            if let Some(t) = &p.tcp_socket {
                let Some(port) = port_number(&t.port) else { return false };
                let host = t.host.clone().unwrap_or_else(|| ip.to_string());
                return tokio::net::TcpStream::connect((host.as_str(), port)).await.is_ok();
            }
            if let Some(h) = &p.http_get {
                let Some(port) = port_number(&h.port) else { return false };
                let scheme = h.scheme.as_deref().unwrap_or("HTTP").to_ascii_lowercase();
                let host = h.host.clone().unwrap_or_else(|| ip.to_string());
                let path = h.path.clone().unwrap_or_else(|| "/".to_string());
                let url = format!("{scheme}://{host}:{port}{path}");
                let client = self.http.get_or_init(|| {
                    reqwest::Client::builder()
                        .redirect(reqwest::redirect::Policy::none())
                        .build()
                        .unwrap_or_default()
                });
                let mut req = client.get(&url);
                for header in h.http_headers.iter().flatten() {
                    req = req.header(&header.name, &header.value);
                }
                // Kubernetes counts 200 to 399 as success.
                return req
                    .send()
                    .await
                    .is_ok_and(|r| (200..400).contains(&r.status().as_u16()));
            }
            false
        };
        tokio::time::timeout(timeout, attempt).await.unwrap_or(false)
    }

    /// An `exec` probe: the command exits 0 inside the main container.
    async fn probe_exec(&self, main: &str, cmd: Vec<String>) -> bool {
        if cmd.is_empty() {
            return false;
        }
        let options = CreateExecOptions {
            cmd: Some(cmd),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            ..Default::default()
        };
        let Ok(exec) = self.docker.create_exec(main, options).await else {
            return false;
        };
        if let Ok(StartExecResults::Attached { mut output, .. }) = self.docker.start_exec(&exec.id, None).await {
            while output.next().await.is_some() {}
        }
        for _ in 0..50 {
            match self.docker.inspect_exec(&exec.id).await {
                Ok(r) if r.running == Some(true) => tokio::time::sleep(Duration::from_millis(20)).await,
                Ok(r) => return r.exit_code == Some(0),
                Err(_) => return false,
            }
        }
        false
    }
}

/// A probe's port; named ports are not known outside Kubernetes.
fn port_number(port: &IntOrString) -> Option<u16> {
    match port {
        IntOrString::Int(p) => u16::try_from(*p).ok(),
        IntOrString::String(s) => s.parse().ok(),
    }
}
