//! Test and benchmark helpers: a throwaway `nats-server` with JetStream on a
//! free port and a temporary store dir, killed on drop.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running `nats-server -js`, stopped when dropped.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store: tempfile::TempDir,
    options: NatsOptions,
}

/// How a [`NatsServer`] is started besides JetStream on a free port:
/// which credentials it demands and whether it speaks TLS.
#[derive(Clone, Debug, Default)]
pub struct NatsOptions {
    token: Option<String>,
    user_password: Option<(String, String)>,
    tls: Option<ServerTls>,
}

/// The TLS of a [`NatsServer`]: its certificate and key, and the CA its
/// clients' certificates must be signed by (none: clients need no certificate).
#[derive(Clone, Debug)]
struct ServerTls {
    cert: PathBuf,
    key: PathBuf,
    verify_clients_with: Option<PathBuf>,
}

impl NatsOptions {
    /// Clients must send this token (`--auth`).
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }

    /// Clients must log in with this user and password (`--user`, `--pass`).
    pub fn user_password(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.user_password = Some((user.into(), password.into()));
        self
    }

    /// The server requires TLS with this certificate and key (PEM files).
    pub fn tls(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.tls = Some(ServerTls {
            cert: cert.into(),
            key: key.into(),
            verify_clients_with: None,
        });
        self
    }

    /// With [`NatsOptions::tls`]: clients must present a certificate signed
    /// by the CA in this PEM file (`--tlsverify`).
    pub fn verify_clients(mut self, ca: impl Into<PathBuf>) -> Self {
        if let Some(tls) = &mut self.tls {
            tls.verify_clients_with = Some(ca.into());
        }
        self
    }

    fn args(&self) -> Vec<std::ffi::OsString> {
        let mut args: Vec<std::ffi::OsString> = Vec::new();
        if let Some(token) = &self.token {
            args.extend(["--auth".into(), token.into()]);
        }
        if let Some((user, password)) = &self.user_password {
            args.extend(["--user".into(), user.into(), "--pass".into(), password.into()]);
        }
        if let Some(tls) = &self.tls {
            args.extend([
                "--tls".into(),
                "--tlscert".into(),
                tls.cert.clone().into(),
                "--tlskey".into(),
                tls.key.clone().into(),
            ]);
            if let Some(ca) = &tls.verify_clients_with {
                args.extend(["--tlsverify".into(), "--tlscacert".into(), ca.clone().into()]);
            }
        }
        args
    }
}

/// The `nats-server` binary: `$NATS_SERVER`, else the first on `PATH`, else
/// the Debian location `/usr/sbin/nats-server`.
pub fn nats_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER") {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("nats-server"))
            .find(|candidate| candidate.is_file())
    });
    on_path.unwrap_or_else(|| PathBuf::from("/usr/sbin/nats-server"))
}

/// A TCP port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

impl NatsServer {
    /// Starts a server on a free port with a fresh store dir and waits until
    /// it accepts connections. Panics (with the reason) if it cannot.
    pub fn start() -> Self {
        Self::start_with(NatsOptions::default())
    }

    /// Like [`NatsServer::start`], with credentials or TLS.
    pub fn start_with(options: NatsOptions) -> Self {
        let store = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let mut server = NatsServer {
            child: None,
            port: free_port(),
            store,
            options,
        };
        server.launch();
        server
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The JetStream store dir.
    pub fn store_dir(&self) -> &Path {
        self.store.path()
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same store.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    fn launch(&mut self) {
        let binary = nats_server_binary();
        let child = Command::new(&binary)
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"])
            .arg(self.store.path())
            .args(self.options.args())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {}: {e} (install it: apt-get install nats-server, or set NATS_SERVER)",
                    binary.display()
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server did not listen on port {} within 10s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}
