//! An event the webhook accepted but the sensor had not acknowledged when
//! `argon run` was killed reaches the sensor's trigger within 5 s of the
//! restart, on the embedded bus and on JetStream.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use argon_e2e::{Example, Proc, free_port, http, wait_until};
use argon_eventbus::testing::NatsServer;

const START: Duration = Duration::from_secs(120);

/// An HTTP sink that records when each request arrived; until `answer` is
/// set it holds requests open without answering (a trigger in flight).
struct Sink {
    port: u16,
    arrivals: Arc<Mutex<Vec<Instant>>>,
    answer: Arc<AtomicBool>,
}

impl Sink {
    fn start() -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let arrivals = Arc::new(Mutex::new(Vec::new()));
        let answer = Arc::new(AtomicBool::new(false));
        let (seen, answering) = (arrivals.clone(), answer.clone());
        std::thread::spawn(move || {
            let mut held: Vec<TcpStream> = Vec::new();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                let _ = reader.read_exact(&mut body);
                seen.lock().unwrap().push(Instant::now());
                if answering.load(Ordering::SeqCst) {
                    let _ = stream.write_all(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                } else {
                    held.push(stream);
                }
            }
        });
        Sink { port, arrivals, answer }
    }

    fn count(&self) -> usize {
        self.arrivals.lock().unwrap().len()
    }
}

/// Kills `argon run` while the trigger of an accepted event is in flight,
/// restarts it and returns how long after the restart began, and after it
/// was ready, the event reached the trigger again.
fn redelivery_after_restart(bus: Option<&str>) -> (Duration, Duration) {
    let sink = Sink::start();
    let example = Example::prepare(
        "http-trigger",
        &[("127.0.0.1:12005", &format!("127.0.0.1:{}", sink.port))],
    );
    let state = tempfile::tempdir().unwrap();
    let api_addr = format!("127.0.0.1:{}", free_port());
    let mut args = vec![
        "run",
        example.path(),
        "--state-dir",
        state.path().to_str().unwrap(),
        "--api-addr",
        &api_addr,
        "--host",
        "127.0.0.1",
    ];
    if let Some(url) = bus {
        args.extend_from_slice(&["--bus", url]);
    }
    let mut first = Proc::spawn("argon run", &args, &[]);
    first.wait_for_output("argon run: ready", START);
    let url = format!("http://127.0.0.1:{}/order", example.port(12004));
    let accepted = http(
        "POST",
        &url,
        &[("Content-Type", "application/json")],
        r#"{"id":1,"customer":"ada"}"#,
    );
    assert_eq!(accepted.map(|a| a.0), Some(200), "{}", first.output());
    wait_until(Duration::from_secs(30), "the trigger to reach the sink", || {
        sink.count() > 0
    })
    .unwrap();
    first.kill();

    sink.answer.store(true, Ordering::SeqCst);
    let before = sink.count();
    let restarted = Instant::now();
    let second = Proc::spawn("argon run (restarted)", &args, &[]);
    second.wait_for_output("argon run: ready", START);
    let ready = Instant::now();
    wait_until(Duration::from_secs(30), "the event to reach the sink again", || {
        sink.count() > before
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", second.output()));
    let arrived = sink.arrivals.lock().unwrap()[before];
    (arrived - restarted, arrived.saturating_duration_since(ready))
}

#[test]
fn an_event_in_flight_at_a_crash_comes_back_within_5s_on_the_embedded_bus() {
    let (started, after) = redelivery_after_restart(None);
    eprintln!("embedded bus: redelivered {started:?} after the restart began, {after:?} after it was ready");
    assert!(
        after < Duration::from_secs(5),
        "redelivered {after:?} after the restart"
    );
}

#[test]
fn an_event_in_flight_at_a_crash_comes_back_within_5s_on_jetstream() {
    let nats = NatsServer::start();
    let (started, after) = redelivery_after_restart(Some(&nats.url()));
    eprintln!("JetStream: redelivered {started:?} after the restart began, {after:?} after it was ready");
    assert!(
        after < Duration::from_secs(5),
        "redelivered {after:?} after the restart"
    );
}
