//! HTTPS webhooks (`serverCertSecret`, `serverKeySecret`): real TLS with a
//! certificate made here, against both buses; what is refused at startup.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls::{self, pki_types::ServerName};

use common::{BusKind, Harness};

/// A self-signed certificate for `localhost`: (cert PEM, key PEM, cert DER).
fn certificate() -> (String, String, rustls::pki_types::CertificateDer<'static>) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    (
        made.cert.pem(),
        made.signing_key.serialize_pem(),
        made.cert.der().clone(),
    )
}

fn tls_webhook(port: u16) -> String {
    format!(
        r#"
apiVersion: argoproj.io/v1alpha1
kind: EventSource
metadata:
  name: secure
spec:
  webhook:
    example:
      endpoint: /example
      method: POST
      port: "{port}"
      serverCertSecret: {{name: tls, key: tls.crt}}
      serverKeySecret: {{name: tls, key: tls.key}}
"#
    )
}

/// A client that trusts only `cert`.
fn connector(cert: rustls::pki_types::CertificateDer<'static>) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// One HTTPS request: (status, body).
async fn https(
    connector: &TlsConnector,
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> Result<(u16, String), Box<dyn std::error::Error + Send + Sync>> {
    let tcp = TcpStream::connect(addr).await?;
    let tls = connector.connect(ServerName::try_from("localhost")?, tcp).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(connection);
    let request = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let text = String::from_utf8(response.into_body().collect().await?.to_bytes().to_vec())?;
    Ok((status, text))
}

async fn start(kind: BusKind, cert: &str, key: &str) -> (Harness, SocketAddr) {
    let h = Harness::start(
        kind,
        tls_webhook,
        &[("tls", "tls.crt", cert), ("tls", "tls.key", key)],
        Duration::from_secs(5),
    )
    .await;
    let url = &h.running().endpoints()[0].url;
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let addr = url
        .trim_start_matches("https://")
        .trim_end_matches("/example")
        .parse()
        .unwrap();
    (h, addr)
}

async fn serves_https(kind: BusKind) {
    let (cert, key, der) = certificate();
    let (mut h, addr) = start(kind, &cert, &key).await;
    let tls = connector(der);

    let (status, _) = https(&tls, addr, "POST", "/example", r#"{"over": "tls"}"#)
        .await
        .unwrap();
    assert_eq!(status, 200);
    let event = h.next_event().await;
    let data: Value = event.data.to_value().unwrap();
    assert_eq!(data["body"], json!({"over": "tls"}));

    // The answer table holds over TLS as over plain HTTP.
    assert_eq!(https(&tls, addr, "GET", "/example", "").await.unwrap().0, 405);
    assert_eq!(https(&tls, addr, "POST", "/nowhere", "{}").await.unwrap().0, 404);
    assert_eq!(https(&tls, addr, "POST", "/example", "{oops").await.unwrap().0, 400);
    assert_eq!(https(&tls, addr, "GET", "/health", "").await.unwrap().0, 200);

    // Plain HTTP on the HTTPS port gets no HTTP answer and publishes nothing.
    let plain = h.client.post(format!("http://{addr}/example")).body("{}").send().await;
    assert!(plain.is_err(), "plain HTTP was answered on the HTTPS port");

    // A client that does not trust the certificate is refused in the handshake.
    let (_, _, other) = certificate();
    let e = https(&connector(other), addr, "POST", "/example", "{}")
        .await
        .unwrap_err();
    assert!(e.to_string().to_lowercase().contains("certificate"), "{e}");

    // Only the one accepted event reached the bus.
    let (status, _) = https(&tls, addr, "POST", "/example", r#"{"n": 2}"#).await.unwrap();
    assert_eq!(status, 200);
    let data: Value = h.next_event().await.data.to_value().unwrap();
    assert_eq!(data["body"], json!({"n": 2}));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_https_on_the_embedded_bus() {
    serves_https(BusKind::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_https_on_jetstream() {
    serves_https(BusKind::JetStream).await;
}

/// A client that connects and never says hello holds up no other client,
/// and does not keep shutdown waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_handshake_holds_up_no_one() {
    let (cert, key, der) = certificate();
    let (mut h, addr) = start(BusKind::Embedded, &cert, &key).await;
    let silent = TcpStream::connect(addr).await.unwrap();
    let mut half = TcpStream::connect(addr).await.unwrap();
    // The first bytes of a TLS record header, and then nothing.
    half.write_all(&[0x16, 0x03]).await.unwrap();
    let tls = connector(der);
    let answered = tokio::time::timeout(
        Duration::from_secs(5),
        https(&tls, addr, "POST", "/example", r#"{"after": "stall"}"#),
    )
    .await
    .expect("answered while two handshakes stall")
    .unwrap();
    assert_eq!(answered.0, 200);
    assert_eq!(h.next_event().await.data.to_value().unwrap()["body"]["after"], "stall");
    h.stop().await;
    drop((silent, half));
}

async fn start_error(yaml: &str, secrets: &[(&str, &str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    common::write_secrets(&dir.path().join("secrets"), secrets);
    let bus = argon_eventbus::open(&format!("embedded:{}", dir.path().join("bus").display()))
        .await
        .unwrap();
    argon_eventsource::EventSourceRunner::start(
        &common::load(yaml),
        bus,
        &argon_crds::secret::Secrets::new(Some(dir.path().join("secrets"))),
        argon_eventsource::RunnerConfig {
            host: std::net::Ipv4Addr::LOCALHOST.into(),
            ..argon_eventsource::RunnerConfig::default()
        },
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .unwrap_err()
    .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_tls_settings_are_startup_errors() {
    let port = argon_eventbus::testing::free_port();
    let (cert, key, _) = certificate();
    let (other_cert, other_key, _) = certificate();

    // The key's secret is missing: named.
    let e = start_error(&tls_webhook(port), &[("tls", "tls.crt", &cert)]).await;
    assert!(e.contains("secret 'tls' key 'tls.key'"), "{e}");

    // Not PEM.
    let e = start_error(
        &tls_webhook(port),
        &[("tls", "tls.crt", "hello"), ("tls", "tls.key", &key)],
    )
    .await;
    assert!(
        e.contains("event source 'secure', event 'example': serverCertSecret holds no PEM certificate"),
        "{e}"
    );
    let e = start_error(
        &tls_webhook(port),
        &[("tls", "tls.crt", &cert), ("tls", "tls.key", "nope")],
    )
    .await;
    assert!(e.contains("serverKeySecret is not a PEM private key"), "{e}");

    // A key that does not belong to the certificate.
    let e = start_error(
        &tls_webhook(port),
        &[("tls", "tls.crt", &cert), ("tls", "tls.key", &other_key)],
    )
    .await;
    assert!(e.contains("do not make a usable certificate"), "{e}");

    // One without the other.
    let e = start_error(
        &tls_webhook(port).replace("      serverKeySecret: {name: tls, key: tls.key}\n", ""),
        &[],
    )
    .await;
    assert!(e.contains("serverCertSecret is set without serverKeySecret"), "{e}");

    // Two events on one port: one HTTPS, one plain; or two certificates.
    let mixed = format!(
        "{}    plain:\n      endpoint: /plain\n      method: POST\n      port: \"{port}\"\n",
        tls_webhook(port)
    );
    let e = start_error(&mixed, &[("tls", "tls.crt", &cert), ("tls", "tls.key", &key)]).await;
    assert!(e.contains("port") && e.contains("HTTPS") && e.contains("plain"), "{e}");
    let two = format!(
        "{}    other:\n      endpoint: /other\n      method: POST\n      port: \"{port}\"\n      \
         serverCertSecret: {{name: tls2, key: tls.crt}}\n      serverKeySecret: {{name: tls2, key: tls.key}}\n",
        tls_webhook(port)
    );
    let e = start_error(
        &two,
        &[
            ("tls", "tls.crt", &cert),
            ("tls", "tls.key", &key),
            ("tls2", "tls.crt", &other_cert),
            ("tls2", "tls.key", &other_key),
        ],
    )
    .await;
    assert!(e.contains("another certificate"), "{e}");
}
