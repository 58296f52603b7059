//! The event bus a command connects to: its URL (`--bus`) and the EventBus
//! manifest (`streamConfig`, and of `jetstreamExotic` also `accessSecret`,
//! `auth` and `tls`) mapped onto argon-eventbus's configuration. Every
//! command that opens a bus goes through [`bus_config`].

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context as _, Result, bail};
use argon_crds::common::TLSConfig;
use argon_crds::eventbus::{AuthStrategy, EventBus, JetStreamConfig as ExoticBus};
use argon_crds::manifest::Manifest;
use argon_crds::secret::Secrets;
use argon_eventbus::{Auth, BusConfig, ClientCert, StreamSettings, Tls};

/// The bus at `url` (`--bus`; without it, the manifest's
/// `jetstreamExotic.url`) as `manifest` configures it, its secrets read
/// from `secrets`. With a manifest the bus takes its name (the stream
/// name). A secret the manifest names that cannot be read is an error here,
/// before anything connects.
pub fn bus_config(url: Option<&str>, manifest: Option<&EventBus>, secrets: &Secrets) -> Result<BusConfig> {
    // With both set, `jetstream` is the bus, as for the controller.
    let exotic = manifest
        .filter(|m| m.spec.jetstream.is_none())
        .and_then(|m| m.spec.jetstream_exotic.as_ref());
    let Some(url) = url.or_else(|| exotic.and_then(|e| e.url.as_deref()).filter(|u| !u.is_empty())) else {
        bail!("no event bus: give --bus nats://HOST:PORT (or an EventBus manifest with jetstreamExotic.url)");
    };
    let mut config = BusConfig::from_url(url)?;
    let Some(manifest) = manifest else {
        return Ok(config);
    };
    let name = manifest.metadata.name.clone().unwrap_or_default();
    let settings = stream_settings(manifest)?;
    match &mut config {
        BusConfig::Embedded(embedded) => {
            if !name.is_empty() {
                embedded.name = name;
            }
            if let Some(settings) = &settings {
                embedded.apply_stream_settings(settings);
            }
        }
        BusConfig::JetStream(js) => {
            if let Some(settings) = settings {
                js.stream = settings;
            }
            if let Some(exotic) = exotic {
                js.auth = auth(exotic, secrets).with_context(|| format!("EventBus '{name}'"))?;
                js.tls = tls(exotic.tls.as_ref(), secrets).with_context(|| format!("EventBus '{name}': tls"))?;
            }
            if !name.is_empty() {
                js.name = name;
            }
        }
    }
    Ok(config)
}

/// The one EventBus manifest in `path` (`--eventbus`).
pub fn load_manifest(path: &Path) -> Result<EventBus> {
    let report = argon_crds::lint::lint_paths(&[path.to_path_buf()]);
    for d in &report.diagnostics {
        eprintln!("{d}");
    }
    if report.has_errors() {
        bail!("the EventBus manifest {} has errors (listed above)", path.display());
    }
    let mut buses: Vec<EventBus> = report
        .manifests
        .into_iter()
        .filter_map(|l| match l.manifest {
            Manifest::EventBus(b) => Some(*b),
            _ => None,
        })
        .collect();
    match buses.len() {
        1 => Ok(buses.remove(0)),
        n => bail!("{} holds {n} EventBus manifests; give a file with one", path.display()),
    }
}

/// The JetStream stream settings of an EventBus manifest's `streamConfig`.
pub fn stream_settings(bus: &EventBus) -> Result<Option<StreamSettings>> {
    let yaml = bus
        .spec
        .jetstream
        .as_ref()
        .and_then(|j| j.stream_config.clone())
        .or_else(|| bus.spec.jetstream_exotic.as_ref().and_then(|j| j.stream_config.clone()));
    let name = bus.metadata.name.as_deref().unwrap_or_default();
    yaml.map(|yaml| StreamSettings::from_yaml(&yaml).with_context(|| format!("EventBus '{name}': streamConfig")))
        .transpose()
}

/// The credentials of `jetstreamExotic`, as Argo Events reads them: `auth`
/// says the strategy (with an `accessSecret` and no `auth`, `basic`); for
/// `token` and `basic` the secret key holds Argo's `auth.yaml`
/// (`token: ...`, or `username: ...` and `password: ...`), for `jwt` a NATS
/// `.creds` file. A `.creds` file is taken as such under any strategy.
fn auth(exotic: &ExoticBus, secrets: &Secrets) -> Result<Auth> {
    let strategy = match (exotic.auth, &exotic.access_secret) {
        (Some(strategy), _) => strategy,
        (None, Some(_)) => AuthStrategy::Basic,
        (None, None) => AuthStrategy::None,
    };
    if strategy == AuthStrategy::None {
        return Ok(Auth::None);
    }
    let Some(selector) = &exotic.access_secret else {
        bail!(
            "auth: {} needs an accessSecret holding the credentials",
            strategy_name(strategy)
        );
    };
    let place = format!("accessSecret '{}' key '{}'", selector.name, selector.key);
    let text = secrets.require(selector).context("accessSecret")?;
    if strategy == AuthStrategy::Jwt || is_creds_file(&text) {
        if !is_creds_file(&text) {
            bail!(
                "{place} is not a NATS credentials file (auth: jwt expects the JWT and NKey seed blocks of a .creds file)"
            );
        }
        let path = secrets.path(selector)?.context("accessSecret")?;
        return Ok(Auth::CredentialsFile(path));
    }
    let fields = auth_yaml(&text)
        .with_context(|| format!("{place} is not Argo's auth.yaml (token: ..., or username: ... and password: ...)"))?;
    let field = |key: &str| fields.get(key).filter(|v| !v.is_empty()).cloned();
    match strategy {
        AuthStrategy::Token => match field("token") {
            Some(token) => Ok(Auth::Token(token)),
            None => bail!("{place} holds no token (auth: token expects `token: ...`)"),
        },
        _ => match (field("username"), field("password")) {
            (Some(user), Some(password)) => Ok(Auth::UserPassword { user, password }),
            _ => bail!(
                "{place} needs both username and password (auth: basic expects `username: ...` and `password: ...`)"
            ),
        },
    }
}

fn strategy_name(strategy: AuthStrategy) -> &'static str {
    match strategy {
        AuthStrategy::None => "none",
        AuthStrategy::Token => "token",
        AuthStrategy::Basic => "basic",
        AuthStrategy::Jwt => "jwt",
    }
}

fn is_creds_file(text: &str) -> bool {
    text.contains("BEGIN NATS USER JWT") && text.contains("BEGIN USER NKEY SEED")
}

/// The keys of an `auth.yaml`, lower-cased (Argo reads it case-insensitively).
fn auth_yaml(text: &str) -> Result<BTreeMap<String, String>> {
    let fields: BTreeMap<String, serde_norway::Value> = serde_norway::from_str(text)?;
    Ok(fields
        .into_iter()
        .filter_map(|(k, v)| {
            let value = match v {
                serde_norway::Value::String(s) => s,
                serde_norway::Value::Number(n) => n.to_string(),
                serde_norway::Value::Bool(b) => b.to_string(),
                _ => return None,
            };
            Some((k.to_ascii_lowercase(), value))
        })
        .collect())
}

/// The TLS files of `tls`, each a secret key's file under the secrets dir.
fn tls(tls: Option<&TLSConfig>, secrets: &Secrets) -> Result<Tls> {
    let Some(tls) = tls else {
        return Ok(Tls::default());
    };
    if tls.insecure_skip_verify == Some(true) {
        bail!(
            "insecureSkipVerify is not supported for the event bus; give caCertSecret with the CA of the NATS server instead"
        );
    }
    let file = |selector, what: &str| -> Result<Option<std::path::PathBuf>> {
        match selector {
            Some(selector) => secrets.path(selector).with_context(|| what.to_string()),
            None => Ok(None),
        }
    };
    let ca_file = file(tls.ca_cert_secret.as_ref(), "caCertSecret")?;
    let cert = file(tls.client_cert_secret.as_ref(), "clientCertSecret")?;
    let key = file(tls.client_key_secret.as_ref(), "clientKeySecret")?;
    let client_cert = match (cert, key) {
        (Some(cert_file), Some(key_file)) => Some(ClientCert { cert_file, key_file }),
        (None, None) => None,
        _ => bail!("clientCertSecret and clientKeySecret go together; give both or neither"),
    };
    Ok(Tls {
        ca_file,
        client_cert,
        // A tls block means TLS, as in Argo Events, whatever else it says.
        require_tls: true,
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use argon_eventbus::JetStreamConfig;
    use argon_eventbus::testing::{NatsOptions, NatsServer};

    use super::*;

    fn manifest(yaml: &str) -> EventBus {
        serde_norway::from_str(yaml).expect("an EventBus")
    }

    /// A secrets dir holding each (secret, key, value).
    fn secrets(files: &[(&str, &str, &str)]) -> (tempfile::TempDir, Secrets) {
        let dir = tempfile::tempdir().unwrap();
        for (name, key, value) in files {
            std::fs::create_dir_all(dir.path().join(name)).unwrap();
            std::fs::write(dir.path().join(name).join(key), value).unwrap();
        }
        let secrets = Secrets::new(Some(dir.path().to_path_buf()));
        (dir, secrets)
    }

    fn jetstream(config: BusConfig) -> JetStreamConfig {
        match config {
            BusConfig::JetStream(js) => js,
            BusConfig::Embedded(e) => panic!("embedded bus {e:?}"),
        }
    }

    const EXOTIC: &str = r#"
apiVersion: argoproj.io/v1alpha1
kind: EventBus
metadata: {name: shared}
spec:
  jetstreamExotic:
    url: nats://nats.example:4222
    accessSecret: {name: nats-auth, key: auth.yaml}
    streamConfig: |
      maxAge: 1h
    tls:
      caCertSecret: {name: nats-tls, key: ca.crt}
      clientCertSecret: {name: nats-tls, key: tls.crt}
      clientKeySecret: {name: nats-tls, key: tls.key}
"#;

    #[test]
    fn an_exotic_bus_maps_url_credentials_tls_and_stream() {
        let (dir, secrets) = secrets(&[
            ("nats-auth", "auth.yaml", "username: argon\npassword: pa55\n"),
            ("nats-tls", "ca.crt", "CA"),
            ("nats-tls", "tls.crt", "CERT"),
            ("nats-tls", "tls.key", "KEY"),
        ]);
        let js = jetstream(bus_config(None, Some(&manifest(EXOTIC)), &secrets).unwrap());
        assert_eq!(js.url, "nats://nats.example:4222");
        assert_eq!(js.name, "shared");
        assert_eq!(js.stream.max_age, std::time::Duration::from_secs(3600));
        assert_eq!(
            js.auth,
            Auth::UserPassword {
                user: "argon".into(),
                password: "pa55".into()
            }
        );
        let tls_dir = dir.path().join("nats-tls");
        assert_eq!(
            js.tls,
            Tls {
                ca_file: Some(tls_dir.join("ca.crt")),
                client_cert: Some(ClientCert {
                    cert_file: tls_dir.join("tls.crt"),
                    key_file: tls_dir.join("tls.key"),
                }),
                require_tls: true,
            }
        );
        // --bus wins over the manifest's URL.
        let js = jetstream(bus_config(Some("nats://other:4222"), Some(&manifest(EXOTIC)), &secrets).unwrap());
        assert_eq!(js.url, "nats://other:4222");
    }

    fn with_auth(auth: &str, key: &str) -> EventBus {
        manifest(&format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: EventBus\nmetadata: {{name: default}}\nspec:\n  jetstreamExotic:\n    url: nats://n:4222\n    auth: {auth}\n    accessSecret: {{name: nats, key: {key}}}\n"
        ))
    }

    #[test]
    fn token_jwt_and_creds_secrets_map_to_their_auth() {
        let creds = "-----BEGIN NATS USER JWT-----\neyJ0\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\nSUAM\n------END USER NKEY SEED------\n";
        let (dir, secrets) = secrets(&[("nats", "auth.yaml", "Token: t0ken\n"), ("nats", "creds", creds)]);
        let auth_of = |bus: &EventBus| jetstream(bus_config(None, Some(bus), &secrets).unwrap()).auth;
        assert_eq!(auth_of(&with_auth("token", "auth.yaml")), Auth::Token("t0ken".into()));
        let creds_file = Auth::CredentialsFile(dir.path().join("nats/creds"));
        assert_eq!(auth_of(&with_auth("jwt", "creds")), creds_file);
        // A .creds file under the default strategy, as Argo Events takes it.
        assert_eq!(auth_of(&with_auth("basic", "creds")), creds_file);
        assert_eq!(auth_of(&with_auth("none", "creds")), Auth::None);

        let err = bus_config(None, Some(&with_auth("basic", "auth.yaml")), &secrets).unwrap_err();
        assert!(
            format!("{err:#}").contains("needs both username and password"),
            "{err:#}"
        );
        let err = bus_config(None, Some(&with_auth("jwt", "auth.yaml")), &secrets).unwrap_err();
        assert!(format!("{err:#}").contains("not a NATS credentials file"), "{err:#}");
    }

    #[test]
    fn a_missing_secret_is_a_clear_error_before_connecting() {
        let (_dir, secrets) = secrets(&[("nats-auth", "auth.yaml", "username: a\npassword: b\n")]);
        let err = bus_config(None, Some(&manifest(EXOTIC)), &secrets).unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("EventBus 'shared': tls: caCertSecret: secret 'nats-tls' key 'ca.crt' not found"),
            "{text}"
        );
        let err = bus_config(None, Some(&with_auth("token", "tok")), &secrets).unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("EventBus 'default': accessSecret: secret 'nats' key 'tok' not found"),
            "{text}"
        );
        let err = bus_config(None, Some(&with_auth("token", "tok")), &Secrets::new(None)).unwrap_err();
        assert!(format!("{err:#}").contains("--secrets-dir"), "{err:#}");
    }

    #[test]
    fn without_a_url_or_with_insecure_tls_nothing_is_configured() {
        let err = bus_config(None, None, &Secrets::default()).unwrap_err();
        assert!(err.to_string().contains("--bus"), "{err}");
        let native = manifest(
            "apiVersion: argoproj.io/v1alpha1\nkind: EventBus\nmetadata: {name: default}\nspec:\n  jetstream: {}\n",
        );
        assert!(bus_config(None, Some(&native), &Secrets::default()).is_err());
        let insecure = manifest(
            "apiVersion: argoproj.io/v1alpha1\nkind: EventBus\nmetadata: {name: default}\nspec:\n  jetstreamExotic:\n    url: nats://n:4222\n    tls: {insecureSkipVerify: true}\n",
        );
        let err = bus_config(None, Some(&insecure), &Secrets::default()).unwrap_err();
        assert!(
            format!("{err:#}").contains("insecureSkipVerify is not supported"),
            "{err:#}"
        );
    }

    #[test]
    fn the_embedded_bus_takes_the_name_and_retention() {
        let BusConfig::Embedded(e) =
            bus_config(Some("embedded:/tmp/bus"), Some(&manifest(EXOTIC)), &Secrets::default()).unwrap()
        else {
            panic!("not embedded")
        };
        assert_eq!(e.name, "shared");
        assert_eq!(e.dir, PathBuf::from("/tmp/bus"));
        assert_eq!(e.max_age, Some(std::time::Duration::from_secs(3600)));
    }

    /// The mapped configuration authenticates to a real server; the same
    /// manifest with a wrong password in the secret is refused by name.
    #[tokio::test]
    async fn the_mapped_credentials_authenticate_to_a_real_server() {
        let server = NatsServer::start_with(NatsOptions::default().user_password("argon", "pa55"));
        let yaml = format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: EventBus\nmetadata: {{name: default}}\nspec:\n  jetstreamExotic:\n    url: {}\n    accessSecret: {{name: nats, key: auth.yaml}}\n",
            server.url()
        );
        let bus = manifest(&yaml);
        let (_dir, good) = secrets(&[("nats", "auth.yaml", "username: argon\npassword: pa55\n")]);
        let opened = argon_eventbus::open_config(bus_config(None, Some(&bus), &good).unwrap())
            .await
            .expect("the right credentials connect");
        let event = argon_eventbus::Event::new("es", "e", "webhook", &serde_json::json!({}));
        opened.publish(&event).await.expect("publish");

        let (_dir, bad) = secrets(&[("nats", "auth.yaml", "username: argon\npassword: nope\n")]);
        let err = argon_eventbus::open_config(bus_config(None, Some(&bus), &bad).unwrap())
            .await
            .err()
            .expect("a wrong password connected");
        let text = err.to_string();
        assert!(
            text.contains(&server.url()) && text.contains("refused the credentials"),
            "{text}"
        );
    }
}
