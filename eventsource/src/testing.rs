//! Real brokers for the message-source tests and `argon-bench source`
//! (feature `testing`): `mosquitto`, `redis-server`, `rabbitmq-server`,
//! `nats-server` and `moto_server` (SQS), each started on a free port with
//! its data in a temp dir, once per test binary ([`shared`]), and restarted
//! on the same port and data by the tests that need a broker restart.
//!
//! Each server runs in a process group of its own (RabbitMQ is a shell
//! script, an Erlang VM and its helpers), killed whole on drop, and a small
//! shell watchdog holds a pipe from the test process: when the test binary
//! exits, however it exits, the pipe closes and the watchdog kills that
//! group. A shared server in a `static` is never dropped, so it needs that.

use std::net::TcpStream;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use argon_eventbus::testing::free_port;

/// Which broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Mosquitto,
    Redis,
    RabbitMq,
    Nats,
    /// `moto_server` (PyPI moto[server], in scripts/test's venv) for SQS.
    Moto,
}

/// A running broker.
pub struct Broker {
    kind: Kind,
    port: u16,
    dir: tempfile::TempDir,
    running: Option<Running>,
}

/// A server process (the leader of its process group) and its watchdog,
/// in the same group.
struct Running {
    server: Child,
    watchdog: Child,
    /// Closing it makes the watchdog kill the group.
    pipe: ChildStdin,
}

impl Running {
    /// SIGKILL to the whole group, then reaps the server and the watchdog.
    fn kill(mut self) {
        let group = nix::unistd::Pid::from_raw(self.server.id() as i32);
        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        let _ = self.server.wait();
        let _ = self.watchdog.wait();
        drop(self.pipe);
    }
}

impl Broker {
    /// Starts a broker of `kind` on a free port and waits until it accepts
    /// connections.
    pub fn start(kind: Kind) -> Broker {
        let mut broker = Broker {
            kind,
            port: free_port(),
            dir: tempfile::tempdir().unwrap(),
            running: None,
        };
        broker.launch();
        broker
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the broker (SIGKILL of its whole process group) and waits for it.
    pub fn kill(&mut self) {
        if let Some(running) = self.running.take() {
            running.kill();
        }
        // The port is free again once nothing listens on it.
        wait_until(Duration::from_secs(20), || {
            TcpStream::connect(("127.0.0.1", self.port)).is_err()
        });
    }

    /// Starts the broker again on the same port with the same data.
    pub fn restart(&mut self) {
        self.kill();
        self.launch();
    }

    fn command(&self) -> (PathBuf, Vec<String>, Vec<(String, String)>) {
        let dir = self.dir.path();
        let port = self.port.to_string();
        match self.kind {
            Kind::Mosquitto => {
                let conf = dir.join("mosquitto.conf");
                std::fs::write(
                    &conf,
                    format!(
                        "listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n\
                         persistence_location {}/\nmax_inflight_messages 100\nmax_queued_messages 100000\n",
                        dir.display()
                    ),
                )
                .unwrap();
                (
                    binary("mosquitto", "/usr/sbin/mosquitto"),
                    vec!["-c".into(), conf.display().to_string()],
                    vec![],
                )
            }
            Kind::Redis => (
                binary("redis-server", "/usr/bin/redis-server"),
                vec![
                    "--port".into(),
                    port,
                    "--bind".into(),
                    "127.0.0.1".into(),
                    "--dir".into(),
                    dir.display().to_string(),
                    "--appendonly".into(),
                    "yes".into(),
                    "--appendfsync".into(),
                    "always".into(),
                    "--save".into(),
                    String::new(),
                ],
                vec![],
            ),
            Kind::RabbitMq => {
                std::fs::write(dir.join("enabled_plugins"), "[].\n").unwrap();
                let env = [
                    ("RABBITMQ_NODE_PORT", port.clone()),
                    ("RABBITMQ_DIST_PORT", free_port().to_string()),
                    ("RABBITMQ_NODENAME", format!("argon-test-{port}@localhost")),
                    ("RABBITMQ_MNESIA_BASE", dir.join("mnesia").display().to_string()),
                    ("RABBITMQ_LOG_BASE", dir.join("log").display().to_string()),
                    (
                        "RABBITMQ_ENABLED_PLUGINS_FILE",
                        dir.join("enabled_plugins").display().to_string(),
                    ),
                    ("RABBITMQ_CONFIG_FILES", dir.join("none").display().to_string()),
                ];
                let mut env: Vec<(String, String)> = env.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
                // Erlang's port mapper daemon, which RabbitMQ would start
                // detached (`epmd -daemon` leaves the process group and
                // outlives the test), runs here in the foreground on a port
                // of its own, in the broker's group, killed with it.
                env.push(("ERL_EPMD_PORT".into(), free_port().to_string()));
                let server = binary("rabbitmq-server", "/usr/lib/rabbitmq/bin/rabbitmq-server");
                assert!(
                    server.exists(),
                    "{} is not installed (scripts/test installs it)",
                    server.display()
                );
                (
                    PathBuf::from("/bin/sh"),
                    vec![
                        "-c".into(),
                        r#"epmd -port "$ERL_EPMD_PORT" & exec "$0""#.into(),
                        server.display().to_string(),
                    ],
                    env,
                )
            }
            Kind::Moto => {
                let bin = std::env::var_os("ARGON_MOTO_BIN")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| {
                        Path::new(&std::env::var_os("HOME").unwrap_or_default()).join(".cache/argon-moto/venv/bin")
                    });
                (
                    bin.join("moto_server"),
                    vec!["-H".into(), "127.0.0.1".into(), "-p".into(), port],
                    vec![],
                )
            }
            Kind::Nats => (
                argon_eventbus::testing::nats_server_binary(),
                vec![
                    "-js".into(),
                    "-a".into(),
                    "127.0.0.1".into(),
                    "-p".into(),
                    port,
                    "-sd".into(),
                    dir.display().to_string(),
                ],
                vec![],
            ),
        }
    }

    fn launch(&mut self) {
        let (program, args, env) = self.command();
        assert!(
            program.exists(),
            "{} is not installed (scripts/test installs it; moto in the venv ARGON_MOTO_BIN names)",
            program.display()
        );
        let log = std::fs::File::create(self.dir.path().join("broker.log")).unwrap();
        let mut command = Command::new(&program);
        command
            .args(&args)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        for (k, v) in env {
            command.env(k, v);
        }
        let server = command.spawn().unwrap();
        // In the server's group: reads until the test process is gone
        // (EOF), then kills the group, itself included (`kill 0`).
        let mut watchdog = Command::new("sh")
            .arg("-c")
            .arg("while read _; do :; done; kill -9 0")
            .process_group(server.id() as i32)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pipe = watchdog.stdin.take().unwrap();
        self.running = Some(Running { server, watchdog, pipe });
        let port = self.port;
        let ready = wait_until(Duration::from_secs(90), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        assert!(
            ready,
            "{:?} did not listen on {port} within 90 s; its log:\n{}",
            self.kind,
            std::fs::read_to_string(self.dir.path().join("broker.log")).unwrap_or_default()
        );
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            running.kill();
        }
    }
}

/// The broker of `kind` shared by the tests of this binary, started on
/// first use. Tests that restart it hold the lock for their whole run; the
/// others hold it too, so one binary's tests of one broker run one at a
/// time, on one server.
pub fn shared(kind: Kind) -> &'static tokio::sync::Mutex<Broker> {
    use std::sync::OnceLock;
    static MOSQUITTO: OnceLock<tokio::sync::Mutex<Broker>> = OnceLock::new();
    static REDIS: OnceLock<tokio::sync::Mutex<Broker>> = OnceLock::new();
    static RABBITMQ: OnceLock<tokio::sync::Mutex<Broker>> = OnceLock::new();
    static NATS: OnceLock<tokio::sync::Mutex<Broker>> = OnceLock::new();
    static MOTO: OnceLock<tokio::sync::Mutex<Broker>> = OnceLock::new();
    let cell = match kind {
        Kind::Mosquitto => &MOSQUITTO,
        Kind::Redis => &REDIS,
        Kind::RabbitMq => &RABBITMQ,
        Kind::Nats => &NATS,
        Kind::Moto => &MOTO,
    };
    cell.get_or_init(|| tokio::sync::Mutex::new(Broker::start(kind)))
}

fn binary(name: &str, debian: &str) -> PathBuf {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    });
    // rabbitmq-server on PATH is Debian's wrapper that switches to the
    // rabbitmq user; the script under /usr/lib runs as the caller.
    if name == "rabbitmq-server" && Path::new(debian).exists() {
        return PathBuf::from(debian);
    }
    on_path.unwrap_or_else(|| PathBuf::from(debian))
}

/// Polls `condition` every 10 ms until it holds or `within` passes.
pub fn wait_until(within: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// An SQS client of the moto server on `port` (moto takes any keys).
pub fn sqs_client(port: u16) -> aws_sdk_sqs::Client {
    let config = aws_sdk_sqs::Config::builder()
        .behavior_version(aws_sdk_sqs::config::BehaviorVersion::latest())
        .region(aws_sdk_sqs::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "testing", "testing", None, None, "test",
        ))
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .build();
    aws_sdk_sqs::Client::from_conf(config)
}
