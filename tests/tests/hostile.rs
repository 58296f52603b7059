//! Hostile clients against a real `argon run`: a flood of slow connections
//! on a webhook port leaves the webhook and the API answering with bounded
//! memory; the API refuses to listen in the open without a token; tokens
//! from a file or the environment work and show neither in `ps` nor in logs.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use argon_e2e::{Example, Proc, free_port, http, wait_until};
use serde_json::json;

const START: Duration = Duration::from_secs(120);

/// VmRSS of a process, in MiB.
fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc/PID/status");
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("VmRSS in /proc/PID/status");
    kib / 1024.0
}

/// Whether the server has closed (or answered and closed) `stream`.
fn closed(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 512];
    match stream.read(&mut buf) {
        // End of stream, or an answer (a 4xx, a 503) before the close.
        Ok(_read) => true,
        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
    }
}

struct Flood {
    streams: Vec<TcpStream>,
}

impl Flood {
    /// `n` connections to `addr`, half trickling their headers, half their
    /// bodies.
    fn open(addr: &str, n: usize) -> Flood {
        let mut streams = Vec::with_capacity(n);
        for i in 0..n {
            let mut s = TcpStream::connect(addr).expect("connect for the flood");
            let start: &[u8] = if i % 2 == 0 {
                b"POST /example HTTP/1.1\r\nHost: x\r\nX-Slow: a"
            } else {
                b"POST /example HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
            };
            s.write_all(start).expect("first bytes of the flood");
            s.set_nonblocking(true).expect("non-blocking");
            streams.push(s);
        }
        Flood { streams }
    }

    /// One more byte on every connection still open; returns how many are.
    fn trickle(&mut self) -> usize {
        let mut open = 0;
        for s in &mut self.streams {
            if !closed(s) && s.write(b" ").is_ok() {
                open += 1;
            }
        }
        open
    }
}

#[test]
fn a_flood_of_slow_connections_leaves_the_webhook_and_the_api_answering() {
    let example = Example::prepare("quickstart", &[]);
    let port = example.port(12000);
    let state = tempfile::tempdir().unwrap();
    let api_addr = format!("127.0.0.1:{}", free_port());
    let proc = example.run(
        state.path(),
        &api_addr,
        &[
            "--host",
            "127.0.0.1",
            // Long enough for the flood to stand while the good requests
            // go through on a loaded machine; short enough to watch it end.
            "--header-timeout",
            "15s",
            "--body-timeout",
            "20s",
        ],
        &[],
    );
    let pid = proc.pid();
    let before = rss_mib(pid);
    let webhook = format!("127.0.0.1:{port}");

    let mut flood = Flood::open(&webhook, 2000);
    let open = flood.trickle();
    let during = rss_mib(pid);

    let url = format!("http://{webhook}/example");
    let body = json!({"message": "still", "who": "here"}).to_string();
    let sent = Instant::now();
    let answer = http("POST", &url, &[("Content-Type", "application/json")], &body);
    let event_time = sent.elapsed();
    assert_eq!(answer.map(|a| a.0), Some(200), "{}", proc.output());
    assert!(event_time < Duration::from_secs(2), "good event took {event_time:?}");

    let asked = Instant::now();
    let list = http("GET", &format!("http://{api_addr}/api/v1/workflows/default"), &[], "");
    let api_time = asked.elapsed();
    assert_eq!(list.map(|a| a.0), Some(200));
    assert!(api_time < Duration::from_secs(2), "API took {api_time:?}");
    // The flood was in force while the good requests were answered.
    let still_open = flood.trickle();
    assert!(
        still_open >= 1900,
        "only {still_open} of the flood's connections were open"
    );

    // The deadlines close every slow connection, however it trickles.
    let mut left = still_open;
    wait_until(
        Duration::from_secs(60),
        "the server to close the slow connections",
        || {
            left = flood.trickle();
            left == 0
        },
    )
    .unwrap_or_else(|e| panic!("{e}: {left} still open"));
    let after = rss_mib(pid);
    eprintln!(
        "flood: {open} slow connections; good event {event_time:?}, API {api_time:?}; \
         RSS {before:.0} MiB before, {during:.0} during, {after:.0} after"
    );
    assert!(during - before < 120.0, "RSS grew from {before:.0} to {during:.0} MiB");
    assert!(after - before < 120.0, "RSS grew from {before:.0} to {after:.0} MiB");
}

#[test]
fn an_idle_flood_past_the_connection_cap_is_refused_and_the_api_still_answers() {
    let example = Example::prepare("quickstart", &[]);
    let port = example.port(12000);
    let state = tempfile::tempdir().unwrap();
    let api_addr = format!("127.0.0.1:{}", free_port());
    let proc = example.run(
        state.path(),
        &api_addr,
        &["--host", "127.0.0.1", "--max-connections", "1000"],
        &[],
    );
    let before = rss_mib(proc.pid());
    // Connections that send nothing, past the cap.
    let mut idle: Vec<TcpStream> = (0..3000)
        .map(|_| TcpStream::connect(format!("127.0.0.1:{port}")).expect("connect"))
        .collect();
    for s in &idle {
        s.set_nonblocking(true).unwrap();
    }
    let mut refused = 0;
    wait_until(
        Duration::from_secs(30),
        "the connections past the cap to be refused",
        || {
            refused = idle.iter_mut().map(closed).filter(|c| *c).count();
            refused >= 2000
        },
    )
    .unwrap_or_else(|e| panic!("{e}: {refused} refused\n{}", proc.output()));
    let asked = Instant::now();
    let list = http("GET", &format!("http://{api_addr}/api/v1/workflows/default"), &[], "");
    assert_eq!(list.map(|a| a.0), Some(200), "{}", proc.output());
    let api_time = asked.elapsed();
    assert!(api_time < Duration::from_secs(2), "API took {api_time:?}");
    let during = rss_mib(proc.pid());
    eprintln!("idle flood: {refused} of 3000 refused; API {api_time:?}; RSS {before:.0} -> {during:.0} MiB");
    assert!(during - before < 120.0, "RSS grew from {before:.0} to {during:.0} MiB");
    assert!(proc.output().contains("connection limit reached"), "{}", proc.output());
}

/// `argon ARGS` that must fail to start: its exit code and output.
fn refused(args: &[&str], env: &[(&str, &str)]) -> String {
    let mut cmd = std::process::Command::new(argon_e2e::argon_bin());
    cmd.args(args).env("ARGON_EXECUTOR", argon_e2e::EXECUTOR);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run argon");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "argon {args:?} started: {text}");
    text
}

#[test]
fn a_non_loopback_api_without_a_token_refuses_to_start() {
    let example = Example::prepare("quickstart", &[]);
    let state = tempfile::tempdir().unwrap();
    let open_addr = format!("0.0.0.0:{}", free_port());
    let state_dir = state.path().to_str().unwrap();
    for args in [
        vec![
            "run",
            example.path(),
            "--state-dir",
            state_dir,
            "--api-addr",
            &open_addr,
        ],
        vec!["server", "--state-dir", state_dir, "--api-addr", &open_addr],
    ] {
        let text = refused(&args, &[]);
        assert!(
            text.contains("refusing to serve the API") && text.contains("--insecure-no-auth"),
            "{text}"
        );
    }
    let text = refused(&["server", "--state-dir", state_dir, "--read-token", "r"], &[]);
    assert!(text.contains("needs a read-write one"), "{text}");

    // Said out loud, it starts.
    let api_addr = format!("0.0.0.0:{}", free_port());
    let mut proc = Proc::spawn(
        "argon server",
        &[
            "server",
            "--state-dir",
            state_dir,
            "--api-addr",
            &api_addr,
            "--insecure-no-auth",
        ],
        &[],
    );
    proc.wait_for_output("argon server: listening", START);
    assert!(proc.output().contains("without a token"), "{}", proc.output());
    proc.terminate(Duration::from_secs(30));
}

#[test]
fn tokens_from_a_file_or_the_environment_guard_the_api_and_stay_secret() {
    let state = tempfile::tempdir().unwrap();
    let write_token = "rw-5f3c9a1e7d2b";
    let read_token = "ro-8e1d4c7b2a6f";
    let token_file = state.path().join("token");
    std::fs::write(&token_file, format!("{write_token}\n")).unwrap();
    let api_addr = format!("0.0.0.0:{}", free_port());
    let state_dir = state.path().join("state");
    let mut proc = Proc::spawn(
        "argon server",
        &[
            "server",
            "--state-dir",
            state_dir.to_str().unwrap(),
            "--api-addr",
            &api_addr,
            "--auth-token-file",
            token_file.to_str().unwrap(),
        ],
        &[("ARGON_READ_TOKEN", read_token), ("RUST_LOG", "debug")],
    );
    proc.wait_for_output("argon server: listening", START);
    let local = api_addr.replace("0.0.0.0", "127.0.0.1");
    let base = format!("http://{local}/api/v1/workflows/default");
    let bearer = |t: &str| format!("Bearer {t}");
    let workflow = json!({"workflow": {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
        "metadata": {"generateName": "t-"},
        "spec": {"entrypoint": "main", "templates": [{"name": "main", "suspend": {}}]}
    }})
    .to_string();
    let status = |method: &str, url: &str, token: Option<&str>, body: &str| {
        let auth = token.map(bearer);
        let mut headers = vec![("Content-Type", "application/json")];
        if let Some(a) = &auth {
            headers.push(("Authorization", a.as_str()));
        }
        http(method, url, &headers, body).map_or(0, |a| a.0)
    };
    assert_eq!(status("GET", &base, None, ""), 401);
    assert_eq!(status("GET", &base, Some("guess"), ""), 401);
    assert_eq!(status("GET", &base, Some(read_token), ""), 200);
    assert_eq!(status("POST", &base, Some(read_token), &workflow), 403);
    assert_eq!(status("POST", &base, Some(write_token), &workflow), 201);
    assert_eq!(
        status("GET", &format!("http://{local}/metrics"), Some(read_token), ""),
        404,
        "argon server has no event source metrics"
    );

    // The client takes the token from a file too.
    let listed = std::process::Command::new(argon_e2e::argon_bin())
        .args(["list", "--server", &format!("http://{local}"), "-o", "json"])
        .args(["--auth-token-file", token_file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    assert!(String::from_utf8_lossy(&listed.stdout).contains("\"t-"));

    let cmdline = std::fs::read(format!("/proc/{}/cmdline", proc.pid())).unwrap();
    let cmdline = String::from_utf8_lossy(&cmdline);
    for token in [write_token, read_token] {
        assert!(!cmdline.contains(token), "ps shows a token: {cmdline}");
    }
    proc.terminate(Duration::from_secs(30));
    let output = proc.output();
    for token in [write_token, read_token] {
        assert!(!output.contains(token), "a token is in the log:\n{output}");
    }
}

#[test]
fn every_command_takes_the_same_token_options() {
    for command in [
        &["run", "--help"][..],
        &["server", "--help"],
        &["sensor", "run", "--help"],
        &["list", "--help"],
    ] {
        let out = argon_e2e::argon(command);
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(
            help.contains("--auth-token ") && help.contains("--auth-token-file") && help.contains("ARGON_AUTH_TOKEN"),
            "argon {command:?}:\n{help}"
        );
        assert!(
            !help.contains("--token ") && !help.contains("ARGON_TOKEN]"),
            "argon {command:?}:\n{help}"
        );
    }
    for command in [
        &["run", "--help"][..],
        &["server", "--help"],
        &["eventsource", "run", "--help"],
    ] {
        let out = argon_e2e::argon(command);
        let help = String::from_utf8_lossy(&out.stdout);
        for flag in [
            "--header-timeout",
            "--body-timeout",
            "--idle-timeout",
            "--max-connections",
        ] {
            assert!(help.contains(flag), "argon {command:?} lacks {flag}:\n{help}");
        }
    }
}
