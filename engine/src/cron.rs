//! CronWorkflows: on each tick of the engine, every stored CronWorkflow whose
//! schedule came due submits its workflow (named after the scheduled time,
//! so a tick never submits twice), honouring `timezone`, `suspend`,
//! `concurrencyPolicy` (Allow, Forbid, Replace), `startingDeadlineSeconds`
//! for runs missed while the engine was down, and the history limits.

use std::collections::BTreeMap;
use std::sync::Arc;

use argon_crds::time::{Schedule, parse_zone};
use argon_crds::workflow::{ConcurrencyPolicy, CronWorkflow, CronWorkflowStatus, Workflow, WorkflowPhase};
use chrono::{DateTime, Utc};

use crate::engine::{CRON_WORKFLOW_LABEL, Engine};
use crate::{Error, Result};
use argon_client::TemplateKind;
use argon_client::{SubmitOptions, WorkflowAction};

/// How late a tick may be noticed and still count as on time.
const SLACK: chrono::Duration = chrono::Duration::seconds(5);

/// The schedules of a CronWorkflow, in its `spec.timezone` (UTC by default).
fn parse_schedules(c: &CronWorkflow) -> std::result::Result<Vec<Schedule>, String> {
    let zone = match c.spec.timezone.as_deref().filter(|z| !z.trim().is_empty()) {
        Some(z) => parse_zone(z).map_err(|e| format!("spec.timezone: {e}"))?,
        None => chrono_tz::UTC,
    };
    let mut texts: Vec<String> = c.spec.schedules.clone();
    if let Some(s) = c.spec.schedule.clone().filter(|s| !s.is_empty()) {
        texts.push(s);
    }
    texts.iter().map(|t| Schedule::parse(t, zone)).collect()
}

/// When a CronWorkflow's next run is due after `after` (none when it is
/// suspended, or its schedule does not parse or never comes due).
pub fn next_run(c: &CronWorkflow, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if c.spec.suspend.unwrap_or(false) {
        return None;
    }
    parse_schedules(c)
        .ok()?
        .iter()
        .filter_map(|s| s.next_after(after))
        .min()
}

/// The latest time `schedule` came due in (`after`, `now`], if any.
fn latest_due(schedule: &Schedule, after: DateTime<Utc>, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let mut due = None;
    let mut t = after;
    for _ in 0..10_000 {
        match schedule.next_after(t) {
            Some(n) if n <= now => {
                due = Some(n);
                t = n;
            }
            _ => break,
        }
    }
    due
}

/// Submits the runs of the CronWorkflows as they come due, every half
/// second, until the future is dropped.
pub async fn schedule(engine: Arc<Engine>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_millis(500));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = self::tick(&engine, Utc::now()).await {
            tracing::warn!(error = %e, "cron scheduling failed");
        }
    }
}

/// Submits the runs of every CronWorkflow that came due by `now`.
pub async fn tick(engine: &Arc<Engine>, now: DateTime<Utc>) -> Result<()> {
    for doc in engine.templates(TemplateKind::CronWorkflow, "")? {
        let Ok(cron) = serde_json::from_value::<CronWorkflow>(doc) else {
            continue;
        };
        if let Err(e) = tick_one(engine, cron, now).await {
            tracing::warn!(error = %e, "cron workflow tick failed");
        }
    }
    Ok(())
}

async fn tick_one(engine: &Arc<Engine>, mut cron: CronWorkflow, now: DateTime<Utc>) -> Result<()> {
    let namespace = cron.metadata.namespace.clone().unwrap_or_default();
    let name = cron.metadata.name.clone().unwrap_or_default();
    if cron.spec.suspend.unwrap_or(false) {
        return Ok(());
    }
    // History is pruned at every tick, due or not: runs finish between ticks.
    let runs = engine.list_workflows(&namespace, Some((CRON_WORKFLOW_LABEL, &name)))?;
    prune_history(engine, &cron, &namespace, &runs);
    let schedules = parse_schedules(&cron).map_err(Error::Invalid)?;
    let status = cron.status.clone().unwrap_or_default();
    let last = status
        .last_scheduled_time
        .as_ref()
        .map(crate::time::to_chrono)
        .or_else(|| cron.metadata.creation_timestamp.as_ref().map(crate::time::to_chrono))
        .unwrap_or(now);
    let Some(due) = schedules.iter().filter_map(|s| latest_due(s, last, now)).max() else {
        return Ok(());
    };
    let mut new_status = CronWorkflowStatus {
        last_scheduled_time: Some(crate::time::from_chrono(due)),
        ..status
    };
    let late = now - due;
    let on_time = late <= SLACK
        || cron
            .spec
            .starting_deadline_seconds
            .is_some_and(|d| d > 0 && late <= chrono::Duration::seconds(d));
    let active: Vec<&Workflow> = runs
        .iter()
        .filter(|w| {
            !w.status
                .as_ref()
                .and_then(|s| s.phase)
                .is_some_and(|p| p.is_completed())
        })
        .collect();
    let policy = cron.spec.concurrency_policy.unwrap_or(ConcurrencyPolicy::Allow);
    let mut submit = on_time;
    if on_time && !active.is_empty() {
        match policy {
            ConcurrencyPolicy::Allow => {}
            ConcurrencyPolicy::Forbid => submit = false,
            ConcurrencyPolicy::Replace => {
                for w in &active {
                    let wname = w.metadata.name.clone().unwrap_or_default();
                    let _ = engine.act_on(&namespace, &wname, WorkflowAction::Terminate).await;
                }
            }
        }
    }
    if submit {
        let mut wf = Workflow::new(&format!("{name}-{}", due.timestamp()), cron.spec.workflow_spec.clone());
        wf.metadata.namespace = Some(namespace.clone());
        let mut labels: BTreeMap<String, String> = cron
            .spec
            .workflow_metadata
            .as_ref()
            .and_then(|m| m.labels.clone())
            .unwrap_or_default();
        labels.insert(CRON_WORKFLOW_LABEL.to_string(), name.clone());
        wf.metadata.labels = Some(labels);
        let mut annotations = cron
            .spec
            .workflow_metadata
            .as_ref()
            .and_then(|m| m.annotations.clone())
            .unwrap_or_default();
        annotations.insert(
            "workflows.argoproj.io/scheduled-time".to_string(),
            due.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        );
        wf.metadata.annotations = Some(annotations);
        let key = format!("cron:{namespace}/{name}/{}", due.timestamp());
        match engine.submit_workflow(
            &namespace,
            wf,
            SubmitOptions {
                idempotency_key: Some(key),
                ..Default::default()
            },
        ) {
            Ok(s) => tracing::info!(cron = %name, workflow = %s.name, "cron workflow submitted a run"),
            Err(e) => tracing::warn!(cron = %name, error = %e, "cron workflow could not submit its run"),
        }
    }
    let runs = engine.list_workflows(&namespace, Some((CRON_WORKFLOW_LABEL, &name)))?;
    new_status.active = runs
        .iter()
        .filter(|w| {
            !w.status
                .as_ref()
                .and_then(|s| s.phase)
                .is_some_and(|p| p.is_completed())
        })
        .map(|w| k8s_openapi::api::core::v1::ObjectReference {
            name: w.metadata.name.clone(),
            namespace: w.metadata.namespace.clone(),
            uid: w.metadata.uid.clone(),
            kind: Some("Workflow".into()),
            ..Default::default()
        })
        .collect();
    cron.status = Some(new_status);
    engine.store().put_template(
        TemplateKind::CronWorkflow,
        &namespace,
        &name,
        &serde_json::to_value(&cron)?,
    )?;
    Ok(())
}

/// Deletes finished runs beyond the history limits (newest kept).
fn prune_history(engine: &Engine, cron: &CronWorkflow, namespace: &str, runs: &[Workflow]) {
    let keep_ok = cron.spec.successful_jobs_history_limit.unwrap_or(3).max(0) as usize;
    let keep_failed = cron.spec.failed_jobs_history_limit.unwrap_or(1).max(0) as usize;
    let (mut ok, mut failed) = (0usize, 0usize);
    for w in runs {
        let phase = w.status.as_ref().and_then(|s| s.phase);
        let excess = match phase {
            Some(WorkflowPhase::Succeeded) => {
                ok += 1;
                ok > keep_ok
            }
            Some(WorkflowPhase::Failed | WorkflowPhase::Error) => {
                failed += 1;
                failed > keep_failed
            }
            _ => false,
        };
        if excess && let Some(n) = &w.metadata.name {
            let _ = engine.delete_workflow(namespace, n);
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn cron(schedule: &str, tz: Option<&str>) -> CronWorkflow {
        let mut c = CronWorkflow::new(
            "c",
            argon_crds::workflow::CronWorkflowSpec {
                workflow_spec: Default::default(),
                schedule: Some(schedule.into()),
                schedules: vec![],
                concurrency_policy: None,
                suspend: None,
                starting_deadline_seconds: None,
                successful_jobs_history_limit: None,
                failed_jobs_history_limit: None,
                timezone: tz.map(str::to_string),
                workflow_metadata: None,
                stop_strategy: None,
                when: None,
            },
        );
        c.metadata.namespace = Some("default".into());
        c
    }

    #[test]
    fn schedules_find_the_latest_due_time_in_their_zone() {
        let c = cron("0 9 * * *", Some("Asia/Tokyo"));
        let s = parse_schedules(&c).unwrap();
        let after = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let now = Utc.with_ymd_and_hms(2026, 1, 3, 1, 0, 0).unwrap();
        // 09:00 in Tokyo is 00:00 UTC.
        assert_eq!(
            latest_due(&s[0], after, now),
            Some(Utc.with_ymd_and_hms(2026, 1, 3, 0, 0, 0).unwrap())
        );
        assert!(parse_schedules(&cron("* * * * *", Some("Mars/Base"))).is_err());
        let every = parse_schedules(&cron("@every 90s", None)).unwrap();
        assert_eq!(every[0].next_after(after), Some(after + chrono::Duration::seconds(90)));
    }
}
