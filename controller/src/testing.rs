//! A scripted Kubernetes API for the reconcilers' tests: kube's `Client` over
//! tower-test's mock service, answering an expected sequence of requests
//! and recording what each one sent.

use http::{Method, Request, Response};
use kube::Client;
use kube::client::Body;
use serde_json::{Value, json};

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// How the scripted API answers one request.
pub enum Reply {
    /// This status and JSON body.
    Json(u16, Value),
    /// 200 with the request's own body (what an apply or a patch of a fresh object gives back).
    Echo,
    /// 200 with the request's body read as a status patch applied to this object.
    Status(Value),
    /// A Kubernetes `Status` failure with this code and reason.
    Fail(u16, &'static str),
}

/// One expected request: method, path (without the query) and the answer.
pub struct Exchange {
    pub method: Method,
    pub path: String,
    pub reply: Reply,
}

/// An expected request.
pub fn expect(method: Method, path: impl Into<String>, reply: Reply) -> Exchange {
    Exchange {
        method,
        path: path.into(),
        reply,
    }
}

/// One request the reconciler made (its path was checked against the script).
#[derive(Debug)]
pub struct Recorded {
    pub method: Method,
    pub query: String,
    pub body: Value,
}

/// A JSON response.
pub fn json_response(status: u16, value: &Value) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Body::from(serde_json::to_vec(value).expect("JSON")))
        .expect("response")
}

/// A client whose requests `serve` answers.
pub fn client() -> (Client, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), handle)
}

/// Answers the `script` in order, asserting each request's method and path;
/// returns what was sent. The handle is dropped at the end, so a request
/// beyond the script fails in the reconciler instead of hanging.
pub async fn serve(mut handle: Handle, script: Vec<Exchange>) -> Vec<Recorded> {
    let mut recorded = Vec::new();
    for (i, exchange) in script.into_iter().enumerate() {
        let next = tokio::time::timeout(std::time::Duration::from_secs(10), handle.next_request()).await;
        let Ok(Some((request, send))) = next else {
            panic!(
                "request {i} ({} {}) never came; the requests so far: {recorded:#?}",
                exchange.method, exchange.path
            );
        };
        let method = request.method().clone();
        let path = request.uri().path().to_string();
        let query = request.uri().query().unwrap_or_default().to_string();
        let bytes = request.into_body().collect_bytes().await.expect("request body");
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).expect("request body is JSON")
        };
        assert_eq!(
            (&method, path.as_str()),
            (&exchange.method, exchange.path.as_str()),
            "request {i}: expected {} {}, got {method} {path}?{query} with {body}",
            exchange.method,
            exchange.path
        );
        let (status, answer) = match exchange.reply {
            Reply::Json(status, value) => (status, value),
            Reply::Echo => (200, body.clone()),
            Reply::Status(mut object) => {
                object["status"] = body["status"].clone();
                (200, object)
            }
            Reply::Fail(code, reason) => (
                code,
                json!({
                    "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": format!("scripted {reason}"), "reason": reason, "code": code
                }),
            ),
        };
        recorded.push(Recorded { method, query, body });
        send.send_response(json_response(status, &answer));
    }
    recorded
}
