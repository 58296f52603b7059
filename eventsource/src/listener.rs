//! The HTTP listener of every Argon port (webhooks, the API, metrics): a
//! deadline on each request's headers and body, an idle deadline on kept-alive
//! connections, and a cap on concurrent connections, so slow or idle clients
//! can neither hold a port nor use up the process's file descriptors.
//!
//! [`raise_fd_limit`] (called once at start) lifts the soft descriptor limit
//! to the hard one and keeps a reserve of it that no listener may take: a
//! flood on one port leaves descriptors for the other ports, the bus and the
//! store.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::{Instant, Sleep};
use tokio_util::sync::CancellationToken;

/// The limits of one listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// A request's headers must arrive within this of their first byte; on
    /// a new connection, of its accept (TLS handshake included).
    pub header_timeout: Duration,
    /// A request's body must arrive within this of its headers.
    pub body_timeout: Duration,
    /// A kept-alive connection waiting for its next request is closed after
    /// this; so is one whose client reads no response for this long.
    pub idle_timeout: Duration,
    /// Connections served at once; the ones beyond are answered 503 and closed.
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 4096,
        }
    }
}

/// The most a request's line and headers may take (431 beyond), which bounds
/// the buffer of a client trickling headers.
const MAX_HEADER_BYTES: usize = 64 << 10;

/// Descriptors no listener may take (for the bus, the store, steps' pipes):
/// a quarter of the limit, at least this many.
const MIN_RESERVE: u64 = 512;

/// Descriptors all listeners together may hold; unset (no cap) until
/// [`raise_fd_limit`] ran.
static CONNECTION_BUDGET: OnceLock<Arc<Semaphore>> = OnceLock::new();

/// What [`raise_fd_limit`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdLimit {
    /// The soft limit now in force.
    pub soft: u64,
    /// Descriptors kept out of the listeners' reach.
    pub reserve: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit and sets aside a
/// reserve of descriptors the listeners cannot take (a quarter, at least
/// 512). Call once, before any listener starts.
pub fn raise_fd_limit() -> io::Result<FdLimit> {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(io::Error::from)?;
    let soft = if hard > soft {
        match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(e) => {
                tracing::warn!(soft, hard, error = %e, "cannot raise the file descriptor limit");
                soft
            }
        }
    } else {
        soft
    };
    let reserve = (soft / 4).max(MIN_RESERVE).min(soft);
    let budget = usize::try_from(soft - reserve)
        .unwrap_or(usize::MAX)
        .min(Semaphore::MAX_PERMITS);
    let _ = CONNECTION_BUDGET.set(Arc::new(Semaphore::new(budget)));
    Ok(FdLimit { soft, reserve })
}

/// The most connections one listener may hold: its own cap, and at most half
/// of what the descriptor limit leaves to all listeners.
fn effective_cap(max_connections: usize) -> usize {
    let cap = match CONNECTION_BUDGET.get() {
        Some(budget) => max_connections.min((budget.available_permits() / 2).max(1)),
        None => max_connections,
    };
    cap.clamp(1, Semaphore::MAX_PERMITS)
}

/// Serves `router` on `listener` (over TLS when `tls` is given) within
/// `limits`, until `shutdown`; then lets the connections still open finish
/// their requests for at most `drain`, and closes them.
pub async fn serve(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
    drain: Duration,
) -> io::Result<()> {
    let local = listener.local_addr()?;
    let cap = effective_cap(limits.max_connections);
    let slots = Arc::new(Semaphore::new(cap));
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    let mut refused = Refusals::default();
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of descriptors, mostly: the waiting connections stay
                    // in the kernel's backlog until some close.
                    tracing::warn!(addr = %local, error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refused.refuse(stream, tls.is_none(), local, cap);
            continue;
        };
        let budget = match CONNECTION_BUDGET.get() {
            None => None,
            Some(budget) => match budget.clone().try_acquire_owned() {
                Ok(permit) => Some(permit),
                Err(_) => {
                    refused.refuse(stream, tls.is_none(), local, cap);
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let (router, tls, shutdown) = (router.clone(), tls.clone(), shutdown.clone());
        tokio::spawn(async move {
            let _held = (slot, budget);
            serve_connection(stream, peer, tls, router, limits, shutdown).await;
        });
    }
    // Every connection holds a slot: all slots back means all closed.
    let closed = slots.acquire_many(u32::try_from(cap).unwrap_or(u32::MAX));
    if tokio::time::timeout(drain, closed).await.is_err() {
        tracing::warn!(addr = %local, drain = ?drain, "requests still open after shutdown; closing them");
    }
    Ok(())
}

/// Answers connections beyond the cap, warning at most every 10 s.
#[derive(Default)]
struct Refusals {
    last_warning: Option<Instant>,
    since_warning: u64,
}

impl Refusals {
    fn refuse(&mut self, stream: TcpStream, plain: bool, addr: SocketAddr, cap: usize) {
        if plain {
            // Best effort and never waiting: the socket buffer takes it or not.
            let _ = stream.try_write(
                b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\nContent-Length: 0\r\n\r\n",
            );
        }
        drop(stream);
        self.since_warning += 1;
        if self.last_warning.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            tracing::warn!(addr = %addr, max_connections = cap, refused = self.since_warning, "connection limit reached; refusing connections");
            self.last_warning = Some(Instant::now());
            self.since_warning = 0;
        }
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    router: Router,
    limits: Limits,
    shutdown: CancellationToken,
) {
    // A new connection owes its first request's headers at once: the idle
    // deadline is for kept-alive connections between requests.
    let phase = Arc::new(Mutex::new(Phase::Head { since: Instant::now() }));
    let io = Watched::new(stream, phase.clone(), limits);
    match tls {
        None => serve_http(io, peer, router, limits, phase, shutdown).await,
        Some(acceptor) => {
            // The handshake reads bytes, so the header deadline covers it.
            let handshake = tokio::select! {
                () = shutdown.cancelled() => return,
                handshake = acceptor.accept(io) => handshake,
            };
            match handshake {
                Ok(tls) => serve_http(tls, peer, router, limits, phase, shutdown).await,
                Err(e) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
            }
        }
    }
}

async fn serve_http<I>(
    io: I,
    peer: SocketAddr,
    router: Router,
    limits: Limits,
    phase: Arc<Mutex<Phase>>,
    shutdown: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
        let busy = Busy::start(phase.clone());
        let request = request.map(|body| Body::new(DeadlineBody::new(body, limits.body_timeout)));
        let call = tower::ServiceExt::oneshot(router.clone(), request);
        async move {
            let response = call.await?;
            // The connection counts as busy until the response is sent.
            Ok::<_, std::convert::Infallible>(response.map(|body| Body::new(Guarded { body, _busy: busy })))
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        // hyper starts its header timer when it waits for a request, idle or
        // not: a backstop for the sum; Watched applies each part.
        .header_read_timeout(limits.idle_timeout + limits.header_timeout)
        .max_header_size(MAX_HEADER_BYTES)
        .keep_alive(true);
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let outcome = tokio::select! {
        outcome = conn.as_mut() => outcome,
        () = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = outcome {
        tracing::debug!(%peer, error = %e, "connection closed");
    }
}

/// Where a connection is, for its deadlines.
#[derive(Clone, Copy, Debug)]
enum Phase {
    /// Waiting for a request to begin.
    Idle { since: Instant },
    /// A request's first bytes came; its headers are not complete.
    Head { since: Instant },
    /// Requests being answered (the body has its own deadline).
    Busy { requests: usize },
}

/// Marks a connection busy while a request is answered.
struct Busy(Arc<Mutex<Phase>>);

impl Busy {
    fn start(phase: Arc<Mutex<Phase>>) -> Self {
        if let Ok(mut p) = phase.lock() {
            *p = match *p {
                Phase::Busy { requests } => Phase::Busy { requests: requests + 1 },
                _ => Phase::Busy { requests: 1 },
            };
        }
        Busy(phase)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if let Ok(mut p) = self.0.lock() {
            *p = match *p {
                Phase::Busy { requests } if requests > 1 => Phase::Busy { requests: requests - 1 },
                _ => Phase::Idle { since: Instant::now() },
            };
        }
    }
}

/// A connection's socket with the idle and header deadlines of [`Phase`],
/// and a deadline on writes that make no progress.
struct Watched<IO> {
    io: IO,
    phase: Arc<Mutex<Phase>>,
    limits: Limits,
    read_deadline: Pin<Box<Sleep>>,
    write_stalled: Option<Pin<Box<Sleep>>>,
}

impl<IO> Watched<IO> {
    fn new(io: IO, phase: Arc<Mutex<Phase>>, limits: Limits) -> Self {
        Watched {
            io,
            phase,
            limits,
            read_deadline: Box::pin(tokio::time::sleep(limits.idle_timeout)),
            write_stalled: None,
        }
    }

    /// The deadline of the next read, after `got` new bytes or none.
    fn read_deadline(&self, got: bool) -> Option<Instant> {
        let mut phase = self.phase.lock().ok()?;
        if got && let Phase::Idle { .. } = *phase {
            *phase = Phase::Head { since: Instant::now() };
        }
        match *phase {
            Phase::Idle { since } => Some(since + self.limits.idle_timeout),
            Phase::Head { since } => Some(since + self.limits.header_timeout),
            Phase::Busy { .. } => None,
        }
    }

    fn poll_write_stall(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        let idle = self.limits.idle_timeout;
        let stall = self
            .write_stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(idle)));
        ready!(stall.as_mut().poll(cx));
        Poll::Ready(io::Error::new(io::ErrorKind::TimedOut, "the client reads no response"))
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for Watched<IO> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        let got = buf.filled().len() > before;
        let deadline = self.read_deadline(got);
        if polled.is_pending()
            && let Some(deadline) = deadline
        {
            if self.read_deadline.deadline() != deadline {
                self.read_deadline.as_mut().reset(deadline);
            }
            if self.read_deadline.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the client sent no complete request in time",
                )));
            }
        }
        polled
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Watched<IO> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.io).poll_write(cx, buf) {
            Poll::Pending => self.poll_write_stall(cx).map(Err),
            ready => {
                self.write_stalled = None;
                ready
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match Pin::new(&mut self.io).poll_flush(cx) {
            Poll::Pending => self.poll_write_stall(cx).map(Err),
            ready => {
                self.write_stalled = None;
                ready
            }
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match Pin::new(&mut self.io).poll_write_vectored(cx, bufs) {
            Poll::Pending => self.poll_write_stall(cx).map(Err),
            ready => {
                self.write_stalled = None;
                ready
            }
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }
}

/// A request body that fails once its deadline has passed.
struct DeadlineBody {
    body: hyper::body::Incoming,
    deadline: Pin<Box<Sleep>>,
    timeout: Duration,
}

impl DeadlineBody {
    fn new(body: hyper::body::Incoming, timeout: Duration) -> Self {
        DeadlineBody {
            body,
            deadline: Box::pin(tokio::time::sleep(timeout)),
            timeout,
        }
    }
}

/// The error of a body not received in time.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {0:?}")]
pub struct BodyTimeout(Duration);

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        ready!(self.deadline.as_mut().poll(cx));
        Poll::Ready(Some(Err(BodyTimeout(self.timeout).into())))
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A response body that keeps its connection busy until it is sent.
struct Guarded {
    body: Body,
    _busy: Busy,
}

impl http_body::Body for Guarded {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    fn limits() -> Limits {
        Limits {
            header_timeout: Duration::from_millis(300),
            body_timeout: Duration::from_millis(300),
            idle_timeout: Duration::from_millis(300),
            max_connections: 2,
        }
    }

    async fn start(limits: Limits) -> (SocketAddr, CancellationToken) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = Router::new().route(
            "/",
            axum::routing::post(|body: Bytes| async move { format!("{}", body.len()) }).get(|| async { "ok" }),
        );
        let shutdown = CancellationToken::new();
        tokio::spawn(serve(
            listener,
            None,
            router,
            limits,
            shutdown.clone(),
            Duration::from_secs(1),
        ));
        (addr, shutdown)
    }

    /// Reads until the peer closes (or 5 s pass): what the server sent.
    async fn read_to_close(stream: &mut TcpStream) -> String {
        let mut out = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
        String::from_utf8_lossy(&out).into_owned()
    }

    #[tokio::test]
    async fn trickled_headers_are_cut_off_at_the_header_deadline() {
        let (addr, _stop) = start(limits()).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        let started = std::time::Instant::now();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await.unwrap();
        let answer = read_to_close(&mut s).await;
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
        assert!(!answer.contains("200 OK"), "{answer}");
    }

    #[tokio::test]
    async fn a_slow_body_is_cut_off_at_the_body_deadline() {
        let (addr, _stop) = start(limits()).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        let started = std::time::Instant::now();
        s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
            .await
            .unwrap();
        let answer = read_to_close(&mut s).await;
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
        assert!(!answer.contains("200 OK"), "{answer}");
    }

    #[tokio::test]
    async fn an_idle_kept_alive_connection_is_closed() {
        let (addr, _stop) = start(limits()).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
        let started = std::time::Instant::now();
        let answer = read_to_close(&mut s).await;
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn connections_beyond_the_cap_get_503_and_a_free_slot_serves_again() {
        let (addr, _stop) = start(Limits {
            header_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            ..limits()
        })
        .await;
        let holders = [
            TcpStream::connect(addr).await.unwrap(),
            TcpStream::connect(addr).await.unwrap(),
        ];
        let mut third = TcpStream::connect(addr).await.unwrap();
        let answer = read_to_close(&mut third).await;
        assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
        drop(holders);
        // The slots come back once the server has seen the two close.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            let answer = read_to_close(&mut s).await;
            if answer.starts_with("HTTP/1.1 200") {
                break;
            }
            assert!(std::time::Instant::now() < deadline, "never served again: {answer}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn a_whole_request_is_served() {
        let (addr, _stop) = start(limits()).await;
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
            .await
            .unwrap();
        let answer = read_to_close(&mut s).await;
        assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
        assert!(answer.ends_with("\r\n\r\n5"), "{answer}");
    }
}
