//! HTTP templates: one request, its success condition, the response body
//! as the result.

use std::time::Duration;

use argon_crds::workflow::{NodePhase, Outputs, Template};
use serde_json::Value;

use super::error::{OperatorError, Result};
use super::{Ctx, Finished, truncate};
use crate::expr::{self, Vars};

impl Ctx {
    pub(super) async fn http(&self, _id: &str, tmpl: &Template, vars: &Vars) -> Finished {
        let Some(h) = &tmpl.http else {
            return Finished::error("no http");
        };
        if let Err(e) = self.gate().await {
            return Finished::failed(e);
        }
        let sub = |s: &str| expr::substitute(s, vars);
        let prepared: Result<_> = (|| {
            let url = sub(&h.url)?;
            let method = reqwest::Method::from_bytes(h.method.as_deref().unwrap_or("GET").to_uppercase().as_bytes())
                .map_err(|e| OperatorError::InvalidMethod(e.to_string()))?;
            let mut headers = Vec::new();
            for hd in &h.headers {
                let value = match (
                    &hd.value,
                    hd.value_from.as_ref().and_then(|v| v.secret_key_ref.as_ref()),
                ) {
                    (Some(v), _) => sub(v)?,
                    (None, Some(sel)) => self.engine.config.secrets.require(sel)?,
                    _ => String::new(),
                };
                headers.push((hd.name.clone(), value));
            }
            let body = h.body.as_deref().map(sub).transpose()?;
            Ok((url, method, headers, body))
        })();
        let (url, method, headers, body) = match prepared {
            Ok(p) => p,
            Err(e) => return Finished::error(e),
        };
        let mut req = self
            .engine
            .http
            .request(method, &url)
            .timeout(Duration::from_secs(h.timeout_seconds.unwrap_or(30).max(1) as u64));
        for (k, v) in headers {
            req = req.header(k, v);
        }
        if let Some(b) = body {
            req = req.body(b);
        }
        let resp = tokio::select! {
            r = req.send() => r,
            _ = self.cancel.cancelled() => return Finished::failed(self.shutdown_message()),
        };
        let resp = match resp {
            Ok(r) => r,
            Err(e) => return Finished::failed(format!("{url}: {e}")),
        };
        let status = resp.status();
        let mut rvars = vars.clone();
        let mut hmap = serde_json::Map::new();
        for (k, v) in resp.headers() {
            hmap.insert(k.to_string(), Value::String(v.to_str().unwrap_or("").to_string()));
        }
        let body = resp.text().await.unwrap_or_default();
        rvars.insert("response.statusCode".into(), status.as_u16().to_string());
        rvars.insert("response.body".into(), body.clone());
        rvars.insert("response.headers".into(), Value::Object(hmap).to_string());
        let ok = match &h.success_condition {
            Some(c) => match expr::eval_condition(c, &rvars) {
                Ok(b) => b,
                Err(e) => return Finished::error(format!("successCondition: {}", e.0)),
            },
            None => status.is_success(),
        };
        let outputs = Some(Outputs {
            result: Some(truncate(&body, crate::executor::RESULT_LIMIT)),
            ..Default::default()
        });
        if ok {
            Finished::ok(outputs)
        } else {
            Finished {
                phase: NodePhase::Failed,
                message: Some(match &h.success_condition {
                    Some(c) => format!("successCondition '{c}' is false (HTTP {status})"),
                    None => format!("HTTP {status}"),
                }),
                outputs,
            }
        }
    }
}
