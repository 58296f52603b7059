//! A small HTTP/1.1 client for the tests, on hyper: one connection per
//! request, plain HTTP only (no TLS stack, so nothing depends on which TLS
//! features other crates turn on).

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Request, StatusCode};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;

/// Builds requests.
#[derive(Clone, Debug, Default)]
pub struct Client;

impl Client {
    pub fn new() -> Self {
        Client
    }

    pub fn get(&self, url: impl Into<String>) -> RequestBuilder {
        RequestBuilder::new(Method::GET, url.into())
    }

    pub fn post(&self, url: impl Into<String>) -> RequestBuilder {
        RequestBuilder::new(Method::POST, url.into())
    }
}

/// One request being built.
pub struct RequestBuilder {
    method: Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Bytes,
}

impl RequestBuilder {
    fn new(method: Method, url: String) -> Self {
        RequestBuilder {
            method,
            url,
            headers: Vec::new(),
            body: Bytes::new(),
        }
    }

    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Bytes>) -> Self {
        self.body = body.into();
        self
    }

    /// Sends the request and reads the whole answer.
    pub async fn send(self) -> Result<Response, Box<dyn std::error::Error + Send + Sync>> {
        let rest = self.url.strip_prefix("http://").ok_or("only http:// URLs")?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let path = if path.is_empty() { "/" } else { path };
        let stream = tokio::net::TcpStream::connect(authority).await?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let mut request = Request::builder()
            .method(self.method)
            .uri(path)
            .header("host", authority);
        for (k, v) in &self.headers {
            request = request.header(HeaderName::try_from(k.as_str())?, HeaderValue::try_from(v.as_str())?);
        }
        let response = sender.send_request(request.body(Full::new(self.body))?).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await?.to_bytes();
        Ok(Response { status, headers, body })
    }
}

/// A complete answer.
#[derive(Debug)]
pub struct Response {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

impl Response {
    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    pub async fn text(self) -> Result<String, std::string::FromUtf8Error> {
        String::from_utf8(self.body.to_vec())
    }
}
