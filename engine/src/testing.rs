//! Helpers for tests and benchmarks (feature `testing`): a Podman API
//! service of the test binary's own, on a socket in a temp dir, and the
//! names of the images `scripts/test-images` builds locally.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Debian's static busybox, as `localhost/argon-test/busybox:1`.
pub const BUSYBOX: &str = "localhost/argon-test/busybox:1";
/// A Debian rootfs with python3.
pub const PYTHON: &str = "localhost/argon-test/python:1";
/// Busybox with `ENTRYPOINT ["echo"]` and `USER 1000`.
pub const GREETER: &str = "localhost/argon-test/greeter:1";

/// A `podman system service` on a socket of its own.
pub struct Podman {
    _dir: tempfile::TempDir,
    socket: String,
}

impl Podman {
    /// The service's socket, as `unix:///PATH`.
    pub fn socket(&self) -> &str {
        &self.socket
    }
}

/// The Podman service of this test binary, started at the first call. It
/// ends with the binary: its shell waits on a pipe this process holds open.
/// Panics when podman or the test images are missing, saying what to run.
pub fn podman() -> &'static Podman {
    static PODMAN: OnceLock<Podman> = OnceLock::new();
    PODMAN.get_or_init(|| {
        let dir = tempfile::tempdir().expect("a temp dir");
        let sock = dir.path().join("podman.sock");
        let socket = format!("unix://{}", sock.display());
        let child = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "podman system service --time=0 {socket} >{log} 2>&1 & pid=$!; read _; kill $pid",
                log = dir.path().join("podman.log").display()
            ))
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("podman is needed for these tests: run ./scripts/test, which installs it");
        // Keep the pipe open for the life of the binary.
        std::mem::forget(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while !sock.exists() {
            assert!(Instant::now() < deadline, "podman system service did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        for image in [BUSYBOX, PYTHON, GREETER] {
            let ok = std::process::Command::new("podman")
                .args(["image", "exists", image])
                .status()
                .is_ok_and(|s| s.success());
            assert!(ok, "image {image} is missing: run ./scripts/test-images");
        }
        Podman { _dir: dir, socket }
    })
}

/// The names of the containers (running or not) Argon made for workflow `uid`.
pub fn containers_of(uid: &str) -> Vec<String> {
    let out = std::process::Command::new("podman")
        .args(["ps", "-a", "--format", "{{.Names}}", "--filter"])
        .arg(format!("label={}={uid}", crate::executor::container::WORKFLOW_LABEL))
        .output()
        .expect("run podman ps");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// An S3 server of the test binary's own: `moto_server` (PyPI `moto[server]`,
/// which `scripts/test` installs in a venv under `~/.cache/argon-moto`, or
/// the folder `ARGON_MOTO_BIN` names) on a free loopback port, with IAM
/// authentication on: only the access key made at start is accepted.
pub struct S3Server {
    _dir: tempfile::TempDir,
    /// `127.0.0.1:PORT`, as an artifact repository's `endpoint` names it.
    pub endpoint: String,
    /// The access key id the server accepts.
    pub access_key: String,
    /// Its secret.
    pub secret_key: String,
    python: std::path::PathBuf,
}

/// Where `moto_server` and the venv's python are.
fn moto_bin() -> std::path::PathBuf {
    if let Some(dir) = std::env::var_os("ARGON_MOTO_BIN") {
        return dir.into();
    }
    let home = std::env::var_os("HOME").unwrap_or_default();
    std::path::Path::new(&home).join(".cache/argon-moto/venv/bin")
}

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The S3 server of this test binary, started at the first call; it ends
/// with the binary (its shell waits on a pipe this process holds open).
/// Panics when moto is missing, saying what to run.
pub fn s3() -> &'static S3Server {
    static S3: OnceLock<S3Server> = OnceLock::new();
    S3.get_or_init(|| {
        let bin = moto_bin();
        let server = bin.join("moto_server");
        assert!(
            server.exists(),
            "{} is missing: run ./scripts/test, which installs moto[server] there (or set ARGON_MOTO_BIN)",
            server.display()
        );
        let dir = tempfile::tempdir().expect("a temp dir");
        let port = free_port();
        // The first three requests (the IAM calls below) go unauthenticated;
        // every later one needs the access key they create.
        let child = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "INITIAL_NO_AUTH_ACTION_COUNT=3 {server} -H 127.0.0.1 -p {port} >{log} 2>&1 & pid=$!; read _; kill $pid",
                server = server.display(),
                log = dir.path().join("moto.log").display()
            ))
            .current_dir(dir.path())
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("start moto_server");
        std::mem::forget(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "moto_server did not start: {}",
                std::fs::read_to_string(dir.path().join("moto.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let endpoint = format!("127.0.0.1:{port}");
        let python = bin.join("python");
        let out = std::process::Command::new(&python)
            .arg("-c")
            .arg(IAM_SETUP)
            .arg(format!("http://{endpoint}"))
            .output()
            .expect("run the venv's python");
        assert!(
            out.status.success(),
            "cannot create moto's access key: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout);
        let mut words = text.split_whitespace();
        let access_key = words.next().expect("an access key id").to_string();
        let secret_key = words.next().expect("a secret key").to_string();
        S3Server {
            _dir: dir,
            endpoint,
            access_key,
            secret_key,
            python,
        }
    })
}

const IAM_SETUP: &str = r#"
import boto3, json, sys
iam = boto3.client("iam", endpoint_url=sys.argv[1], region_name="us-east-1",
                   aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
iam.create_user(UserName="argon")
iam.put_user_policy(UserName="argon", PolicyName="all", PolicyDocument=json.dumps(
    {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}))
k = iam.create_access_key(UserName="argon")["AccessKey"]
print(k["AccessKeyId"], k["SecretAccessKey"])
"#;

const S3_CALL: &str = r#"
import boto3, json, sys
endpoint, key, secret, op = sys.argv[1:5]
args = sys.argv[5:]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id=key, aws_secret_access_key=secret)
if op == "create":
    s3.create_bucket(Bucket=args[0])
elif op == "keys":
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=args[0])
    print(json.dumps([o["Key"] for p in pages for o in p.get("Contents", [])]))
elif op == "get":
    sys.stdout.buffer.write(s3.get_object(Bucket=args[0], Key=args[1])["Body"].read())
elif op == "put":
    s3.put_object(Bucket=args[0], Key=args[1], Body=args[2].encode())
"#;

impl S3Server {
    fn call(&self, args: &[&str]) -> Vec<u8> {
        let out = std::process::Command::new(&self.python)
            .arg("-c")
            .arg(S3_CALL)
            .arg(format!("http://{}", self.endpoint))
            .arg(&self.access_key)
            .arg(&self.secret_key)
            .args(args)
            .output()
            .expect("run the venv's python");
        assert!(
            out.status.success(),
            "s3 {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Creates a bucket (through boto3, not Argon's client).
    pub fn create_bucket(&self, bucket: &str) {
        self.call(&["create", bucket]);
    }

    /// The keys in a bucket, as boto3 lists them.
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        serde_json::from_slice(&self.call(&["keys", bucket])).expect("a JSON list of keys")
    }

    /// The content of an object.
    pub fn get(&self, bucket: &str, key: &str) -> Vec<u8> {
        self.call(&["get", bucket, key])
    }

    /// Stores an object.
    pub fn put(&self, bucket: &str, key: &str, content: &str) {
        self.call(&["put", bucket, key, content]);
    }

    /// Writes the server's credentials as secret `name` (keys `accesskey`
    /// and `secretkey`) under the secrets dir `dir`.
    pub fn write_secret(&self, dir: &std::path::Path, name: &str) {
        let d = dir.join(name);
        std::fs::create_dir_all(&d).expect("create the secret's folder");
        std::fs::write(d.join("accesskey"), &self.access_key).expect("write the access key");
        std::fs::write(d.join("secretkey"), &self.secret_key).expect("write the secret key");
    }
}
