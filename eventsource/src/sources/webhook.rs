//! `webhook`: any HTTP request on the endpoint becomes an event with data
//! `{header, body, metadata}`. A JSON body stays JSON, a form becomes a map, a
//! GET's query string becomes a map; the `Authorization` header is masked.

use std::collections::BTreeMap;

use argon_crds::eventsource::WebhookContext;
use argon_eventbus::event::is_json_content_type;
use axum::http::Method;
use axum::http::request::Parts;
use bytes::Bytes;
use serde_json::Value;

use super::{Incoming, Receiver, content_type, form_map, header_map, parse_json};
use crate::error::Rejection;

/// A plain webhook endpoint.
#[derive(Debug)]
pub struct Webhook {
    metadata: BTreeMap<String, String>,
}

impl Webhook {
    /// The receiver for one webhook event.
    pub fn new(context: &WebhookContext) -> Self {
        Webhook {
            metadata: context.metadata.clone(),
        }
    }
}

impl Receiver for Webhook {
    fn receive(&self, request: &Parts, body: &Bytes) -> Result<Vec<Incoming>, Rejection> {
        let content_type = content_type(request);
        let body = if request.method == Method::GET && body.is_empty() {
            form_map(request.uri.query().unwrap_or("").as_bytes())
        } else if is_json_content_type(&content_type) {
            parse_json(body)?
        } else if content_type == "application/x-www-form-urlencoded" {
            form_map(body)
        } else if body.is_empty() {
            Value::Null
        } else {
            // No or another content type: JSON if it parses, else the text.
            serde_json::from_slice(body).unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned()))
        };
        Ok(vec![Incoming {
            id: None,
            data: serde_json::json!({
                "header": header_map(&request.headers),
                "body": body,
                "metadata": self.metadata,
            }),
        }])
    }
}
