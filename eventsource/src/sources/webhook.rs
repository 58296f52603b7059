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
use serde_json::value::RawValue;

use super::{Headers, Incoming, Receiver, content_type, form_map, parse_json, to_raw};
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

/// The data of a webhook event, serialized straight from its parts.
#[derive(serde::Serialize)]
struct WebhookData<'a> {
    header: Headers<'a>,
    body: &'a RawValue,
    metadata: &'a BTreeMap<String, String>,
}

impl Receiver for Webhook {
    fn receive(&self, request: &Parts, body: &Bytes) -> Result<Vec<Incoming>, Rejection> {
        let content_type = content_type(request);
        let owned: Box<RawValue>;
        let body: &RawValue = if request.method == Method::GET && body.is_empty() {
            owned = to_raw(&form_map(request.uri.query().unwrap_or("").as_bytes()));
            &owned
        } else if is_json_content_type(&content_type) {
            parse_json(body)?
        } else if content_type == "application/x-www-form-urlencoded" {
            owned = to_raw(&form_map(body));
            &owned
        } else {
            // No or another content type: JSON if it parses, else the text.
            owned = match std::str::from_utf8(body)
                .ok()
                .and_then(|t| serde_json::from_str::<&RawValue>(t.trim()).ok())
            {
                Some(raw) => raw.to_owned(),
                None if body.is_empty() => to_raw(&Value::Null),
                None => to_raw(&String::from_utf8_lossy(body)),
            };
            &owned
        };
        Ok(vec![Incoming {
            id: None,
            data: to_raw(&WebhookData {
                header: Headers(&request.headers),
                body,
                metadata: &self.metadata,
            }),
        }])
    }
}
