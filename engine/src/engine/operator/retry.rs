//! Retries: a template call with a `retryStrategy` runs as a Retry node
//! whose children are the attempts, with the policy, limit, expression and
//! backoff deciding whether another attempt runs and when.

use argon_crds::workflow::{Inputs, NodePhase, RetryPolicy};

use super::expand::int_or_string;
use super::nodes::kind_type;
use super::{Call, Ctx, Finished, node_id, now, parse_seconds_or_duration};
use crate::expr::{self, Vars};

impl Ctx {
    pub(super) async fn retry_loop(
        &self,
        call: &Call,
        id: &str,
        inputs: &Inputs,
        vars: Vars,
        strategy: &argon_crds::workflow::RetryStrategy,
    ) -> Finished {
        let store = self.engine.store();
        let limit = strategy.limit.as_ref().map(|l| int_or_string(l, &vars)).transpose();
        let limit = match limit {
            Ok(l) => l,
            Err(e) => return Finished::error(format!("retryStrategy.limit: {e}")),
        };
        let policy = strategy.retry_policy.unwrap_or(RetryPolicy::OnFailure);
        let backoff = strategy.backoff.as_ref();
        let base = backoff
            .and_then(|b| b.duration.as_deref())
            .map(parse_seconds_or_duration)
            .transpose()
            .unwrap_or(None);
        let factor = backoff
            .and_then(|b| b.factor.as_ref())
            .and_then(|f| int_or_string(f, &vars).ok())
            .unwrap_or(1)
            .max(1) as u32;
        let cap = backoff
            .and_then(|b| b.cap.as_deref())
            .and_then(|c| parse_seconds_or_duration(c).ok());
        let max_duration = backoff
            .and_then(|b| b.max_duration.as_deref())
            .and_then(|c| parse_seconds_or_duration(c).ok());
        let started = std::time::Instant::now();
        let tmpl = &call.resolved.tmpl;
        let mut attempt = 0usize;
        loop {
            let name = format!("{}({attempt})", call.name);
            let display = format!("{}({attempt})", call.display);
            let child_id = node_id(&self.run.name, &name);
            self.run.add_child(store, id, &child_id);
            let mut avars = vars.clone();
            avars.insert("retries".into(), attempt.to_string());
            let node = match self.run.node(&child_id) {
                Some(n) if n.phase.is_some_and(|p| p.is_fulfilled()) => n,
                existing => {
                    if let Some(f) = existing.as_ref().and_then(|n| self.interrupted(n)) {
                        self.finish(&child_id, f)
                    } else {
                        let t = now();
                        self.run.update_node(store, &child_id, |n| {
                            n.name = name.clone();
                            n.display_name = Some(display.clone());
                            n.type_ = Some(kind_type(tmpl));
                            n.template_name = (!tmpl.name.is_empty() && call.resolved.template_ref.is_none())
                                .then(|| tmpl.name.clone());
                            n.template_ref = call.resolved.template_ref.clone();
                            n.boundary_id = call.boundary.clone();
                            if n.phase != Some(NodePhase::Running) {
                                n.phase = Some(NodePhase::Pending);
                            }
                            n.started_at.get_or_insert(t);
                        });
                        let f = self.body(&child_id, &name, &call.resolved, inputs, avars.clone()).await;
                        self.finish(&child_id, f)
                    }
                }
            };
            let phase = node.phase.unwrap_or(NodePhase::Error);
            let daemoned = phase == NodePhase::Running && node.daemoned == Some(true);
            if phase == NodePhase::Succeeded || daemoned {
                return Finished {
                    phase,
                    message: None,
                    outputs: node.outputs,
                };
            }
            let retryable = match policy {
                RetryPolicy::Always => true,
                RetryPolicy::OnFailure => phase == NodePhase::Failed,
                RetryPolicy::OnError | RetryPolicy::OnTransientError => phase == NodePhase::Error,
            } && !self.cancel.is_cancelled();
            let mut allowed = retryable && limit.is_none_or(|l| (attempt as i64) < l);
            if allowed && let Some(expression) = &strategy.expression {
                let mut evars = avars.clone();
                evars.insert("lastRetry.status".into(), format!("{phase:?}"));
                evars.insert(
                    "lastRetry.exitCode".into(),
                    node.outputs
                        .as_ref()
                        .and_then(|o| o.exit_code.clone())
                        .unwrap_or_else(|| "-1".into()),
                );
                evars.insert("lastRetry.message".into(), node.message.clone().unwrap_or_default());
                allowed = expr::eval_condition(expression, &evars).unwrap_or(false);
            }
            if let Some(max) = max_duration
                && started.elapsed() >= max
            {
                allowed = false;
            }
            if !allowed {
                let mut msg = node.message.clone().unwrap_or_else(|| format!("{phase:?}"));
                if retryable && limit.is_some() {
                    msg = format!("{msg} (no more retries left: {} attempt(s))", attempt + 1);
                }
                return Finished {
                    phase: if phase == NodePhase::Error {
                        NodePhase::Error
                    } else {
                        NodePhase::Failed
                    },
                    message: Some(msg),
                    outputs: node.outputs,
                };
            }
            if let Some(base) = base {
                let mut wait = base.saturating_mul(factor.saturating_pow(attempt as u32));
                if let Some(cap) = cap {
                    wait = wait.min(cap);
                }
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = self.cancel.cancelled() => {
                        return Finished::failed(self.shutdown_message());
                    }
                }
            }
            attempt += 1;
        }
    }
}
