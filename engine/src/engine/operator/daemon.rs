//! Daemon steps (`daemon: true`): the executor starts the step's pod and
//! reports it ready; its node stays Running (`daemoned`) with its address
//! (`{{steps.NAME.ip}}`, `{{tasks.NAME.ip}}`) while the steps or DAG
//! template that started it goes on, and is stopped when that template
//! ends, as Argo does. A restarted engine runs the template again and the
//! executor re-attaches to the daemon still running.

use std::sync::Mutex;

use argon_crds::workflow::NodePhase;

use super::{Ctx, Finished, now};
use crate::executor::StepProcess;

/// The daemons of one steps or DAG template, stopped when it ends.
#[derive(Default)]
pub(super) struct Daemons(Mutex<Vec<(String, Option<StepProcess>)>>);

impl Daemons {
    /// Adds node `id` (with the daemon's step when it is the leaf) to the
    /// scope, once.
    pub(super) fn add(&self, id: &str, step: Option<StepProcess>) {
        let mut list = self.0.lock().unwrap_or_else(|e| e.into_inner());
        match list.iter_mut().find(|(n, _)| n == id) {
            Some(entry) => {
                if step.is_some() {
                    entry.1 = step;
                }
            }
            None => list.push((id.to_string(), step)),
        }
    }

    fn take(&self) -> Vec<(String, Option<StepProcess>)> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

impl Ctx {
    /// The context of a steps or DAG template: its own daemon scope.
    pub(super) fn daemon_scope(&self) -> Ctx {
        Ctx {
            daemons: std::sync::Arc::default(),
            ..self.clone()
        }
    }

    /// Runs a daemon step: its node is Running and daemoned with its address
    /// once the executor reports it ready.
    pub(super) async fn daemon(&self, id: &str, step: StepProcess) -> Result<Finished, crate::executor::StepOutcome> {
        let store = self.engine.store();
        let logs = self.log_sink(id);
        let ip = self
            .engine
            .executor
            .start_daemon(&step, logs, self.cancel.clone())
            .await?;
        self.run.update_node(store, id, |n| {
            n.phase = Some(NodePhase::Running);
            n.daemoned = Some(true);
            n.pod_ip = Some(ip.clone());
            n.host_node_name = Some("localhost".to_string());
        });
        self.daemons.add(id, Some(step));
        Ok(Finished {
            phase: NodePhase::Running,
            message: None,
            outputs: None,
        })
    }

    /// Stops the scope's daemons: a daemon that was still running when its
    /// scope ended succeeded; one that had ended by itself with an error failed.
    pub(super) async fn stop_daemons(&self) {
        let entries = self.daemons.take();
        if entries.is_empty() {
            return;
        }
        let store = self.engine.store();
        let mut failure: Option<String> = None;
        // Leaves first, then the nodes above them (retries) take their outcome.
        for (id, step) in entries.iter().filter(|(_, s)| s.is_some()) {
            let Some(step) = step else { continue };
            let outcome = self.engine.executor.stop_daemon(step).await;
            let message = match outcome.exit_code {
                Some(code) if code != 0 => Some(match outcome.reason.as_deref() {
                    Some("OOMKilled") => format!("OOMKilled (exit code {code})"),
                    _ if !outcome.last_stderr.is_empty() => format!(
                        "the daemon ended with exit code {code} before its scope did: {}",
                        outcome.last_stderr
                    ),
                    _ => format!("the daemon ended with exit code {code} before its scope did"),
                }),
                _ => None,
            };
            if message.is_some() {
                failure.clone_from(&message);
            }
            self.run.update_node(store, id, |n| {
                n.phase = Some(if message.is_some() {
                    NodePhase::Failed
                } else {
                    NodePhase::Succeeded
                });
                n.message = message.clone();
                n.daemoned = None;
                n.finished_at = Some(now());
            });
        }
        for (id, _) in entries.iter().filter(|(_, s)| s.is_none()) {
            if self
                .run
                .node(id)
                .is_some_and(|n| n.phase.is_some_and(|p| p.is_completed()))
            {
                continue;
            }
            self.run.update_node(store, id, |n| {
                n.phase = Some(if failure.is_some() {
                    NodePhase::Failed
                } else {
                    NodePhase::Succeeded
                });
                n.message = failure.clone();
                n.daemoned = None;
                n.finished_at = Some(now());
            });
        }
    }
}
