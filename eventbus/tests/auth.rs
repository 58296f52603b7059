//! JetStream against servers that demand credentials or TLS: the right ones
//! publish and consume; wrong or missing ones fail at once with an error
//! naming the server and the problem, never a hang or a retry loop.

use std::time::{Duration, Instant};

use argon_eventbus::jetstream::JetStreamBus;
use argon_eventbus::testing::{NatsOptions, NatsServer};
use argon_eventbus::{Auth, ClientCert, ConsumerSpec, Error, Event, EventBus, JetStreamConfig};
use futures::StreamExt as _;
use serde_json::json;

/// How long any awaited condition may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(20);

fn config(server: &NatsServer, auth: Auth) -> JetStreamConfig {
    let mut config = JetStreamConfig::new(server.url());
    config.auth = auth;
    config
}

/// Publishes one event and receives it back through a durable consumer.
async fn round_trip(config: JetStreamConfig) {
    let bus = JetStreamBus::connect(config)
        .await
        .expect("connect with the right credentials");
    let event = Event::new("es", "e", "webhook", &json!({"n": 1}));
    bus.publish(&event).await.expect("publish");
    let mut sub = bus.subscribe(&ConsumerSpec::new("auth")).await.expect("subscribe");
    let delivery = tokio::time::timeout(DEADLINE, sub.next())
        .await
        .expect("no delivery within the deadline")
        .expect("subscription ended")
        .expect("delivery error");
    assert_eq!(delivery.event.context.id, event.context.id);
    delivery.ack().await.expect("ack");
}

/// Connecting with `config` fails quickly with [`Error::Auth`] naming the URL.
async fn refused(config: JetStreamConfig) -> String {
    let url = config.url.clone();
    let started = Instant::now();
    let err = match JetStreamBus::connect(config).await {
        Ok(_) => panic!("connected to {url} with wrong or missing credentials"),
        Err(err) => err,
    };
    assert!(matches!(err, Error::Auth { .. }), "not an auth error: {err:?}");
    assert!(!err.is_retryable(), "{err}");
    let text = err.to_string();
    assert!(text.contains(&url), "{text}");
    assert!(text.contains("authorization violation"), "{text}");
    // The connect timeout is 5 s: a refusal must not wait for it.
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    text
}

#[tokio::test]
async fn token_auth_accepts_the_token_and_refuses_others() {
    let server = NatsServer::start_with(NatsOptions::default().token("s3cret-token"));
    round_trip(config(&server, Auth::Token("s3cret-token".into()))).await;
    refused(config(&server, Auth::Token("wrong".into()))).await;
    refused(config(&server, Auth::None)).await;
}

#[tokio::test]
async fn user_password_auth_accepts_the_pair_and_refuses_others() {
    let server = NatsServer::start_with(NatsOptions::default().user_password("argon", "pa55"));
    let pair = |user: &str, password: &str| Auth::UserPassword {
        user: user.into(),
        password: password.into(),
    };
    round_trip(config(&server, pair("argon", "pa55"))).await;
    refused(config(&server, pair("argon", "wrong"))).await;
    refused(config(&server, pair("someone", "pa55"))).await;
    refused(config(&server, Auth::None)).await;
}

/// A CA, a server certificate for 127.0.0.1 and a client certificate it
/// signed, written as PEM files into `dir`.
struct Pki {
    ca: std::path::PathBuf,
    server: ClientCert,
    client: ClientCert,
}

fn pki(dir: &std::path::Path) -> Pki {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let write = |name: &str, text: String| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let leaf = |name: &str, sans: Vec<String>| {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(sans).unwrap().signed_by(&key, &issuer).unwrap();
        ClientCert {
            cert_file: write(&format!("{name}.crt"), cert.pem()),
            key_file: write(&format!("{name}.key"), key.serialize_pem()),
        }
    };
    let server = leaf("server", vec!["127.0.0.1".into(), "localhost".into()]);
    let client = leaf("client", vec!["argon-client".into()]);
    Pki {
        ca: write("ca.crt", ca_cert.pem()),
        server,
        client,
    }
}

#[tokio::test]
async fn tls_with_the_ca_and_client_certificate_connects_and_without_fails_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let server = NatsServer::start_with(
        NatsOptions::default()
            .tls(&pki.server.cert_file, &pki.server.key_file)
            .verify_clients(&pki.ca),
    );

    let mut good = JetStreamConfig::new(server.url());
    good.tls.ca_file = Some(pki.ca.clone());
    good.tls.client_cert = Some(pki.client.clone());
    good.tls.require_tls = true;
    round_trip(good.clone()).await;

    // The server's certificate is signed by a CA the client does not know.
    let mut unknown_ca = good.clone();
    unknown_ca.tls.ca_file = None;
    let err = JetStreamBus::connect(unknown_ca)
        .await
        .err()
        .expect("connected without trusting the CA");
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains(&server.url()), "{err}");

    // The server verifies clients: no client certificate, no connection.
    let mut no_cert = good;
    no_cert.tls.client_cert = None;
    let started = Instant::now();
    let err = JetStreamBus::connect(no_cert)
        .await
        .err()
        .expect("connected without a client certificate");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains(&server.url()), "{err}");
}

#[tokio::test]
async fn require_tls_refuses_a_server_without_tls() {
    let server = NatsServer::start();
    let mut config = JetStreamConfig::new(server.url());
    config.tls.require_tls = true;
    let err = JetStreamBus::connect(config)
        .await
        .err()
        .expect("connected without TLS");
    assert!(matches!(err, Error::Tls { .. }), "{err:?}");
    assert!(err.to_string().contains(&server.url()), "{err}");
}
