//! Suspend templates: wait for a resume, or for their duration.

use std::time::Duration;

use argon_crds::workflow::{NodePhase, Template};

use super::{Ctx, Finished, parse_seconds_or_duration};
use crate::expr::{self, Vars};

impl Ctx {
    pub(super) async fn suspend(&self, id: &str, tmpl: &Template, vars: &Vars) -> Finished {
        let started = self
            .run
            .node(id)
            .and_then(|n| n.started_at)
            .map(|t| crate::time::to_chrono(&t))
            .unwrap_or_else(chrono::Utc::now);
        let duration = match tmpl.suspend.as_ref().and_then(|s| s.duration.as_deref()) {
            Some(d) => {
                let d = match expr::substitute(d, vars) {
                    Ok(d) => d,
                    Err(e) => return Finished::error(e.0),
                };
                match parse_seconds_or_duration(&d) {
                    Ok(d) => Some(d),
                    Err(e) => return Finished::error(format!("suspend duration: {e}")),
                }
            }
            None => None,
        };
        let mut rx = self.run.control();
        let seq0 = rx.borrow_and_update().resume_seq;
        self.run
            .update_node(self.engine.store(), id, |n| n.phase = Some(NodePhase::Running));
        let wake = async {
            match duration {
                Some(d) => {
                    let end = started + chrono::Duration::from_std(d).unwrap_or_default();
                    let wait = (end - chrono::Utc::now()).to_std().unwrap_or(Duration::ZERO);
                    tokio::time::sleep(wait).await
                }
                None => std::future::pending().await,
            }
        };
        tokio::pin!(wake);
        loop {
            let resumed = {
                let c = rx.borrow_and_update();
                c.resume_seq > seq0 || c.resumed.contains(id)
            };
            if resumed {
                return Finished::ok(None);
            }
            tokio::select! {
                _ = &mut wake => return Finished::ok(None),
                r = rx.changed() => if r.is_err() { return Finished::failed(self.shutdown_message()); },
                _ = self.cancel.cancelled() => return Finished::failed(self.shutdown_message()),
            }
        }
    }
}
