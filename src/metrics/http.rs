//! The `--metrics-listen` endpoint: a deliberately small HTTP/1.1 server on one
//! thread of its own (a mio event loop, non-blocking sockets), never on a core loop.
//!
//! Why an event loop and not a thread per connection: a Kubernetes liveness probe
//! hits `/healthz`, and it must be answered however many slow or silent clients hold
//! connections to this port. With one thread per connection (and a cap on threads)
//! a handful of slow clients could take every slot; here a slow client costs one
//! slab entry and a small buffer, never a thread, and cannot delay anyone else:
//! a complete request is answered in the loop turn that reads it.
//!
//! Bounds (they are the whole cost of the endpoint, whatever the clients do):
//! - **threads:** one;
//! - **connections:** at most [`MAX_CONNECTIONS`] open at once. One more is still
//!   accepted, and the connection that has waited longest without sending a complete
//!   request head is closed to make room (the oldest overall if every connection has
//!   already been answered), so a flood of idle connections cannot lock out a probe;
//! - **memory per connection:** a request head of at most [`MAX_REQUEST`] bytes (a
//!   larger one is answered 431) plus the answer being written (a `/metrics` page);
//! - **time per connection:** [`REQUEST_TIMEOUT`] to send the request head (then it
//!   is closed without an answer), [`WRITE_TIMEOUT`] to take the answer, and at most
//!   [`LINGER`] of reading what it still sends after the answer before the close.
//!
//! Each connection carries one request and is closed after the answer
//! (`Connection: close`). `GET /metrics` renders the registry; `GET /healthz` answers
//! 200 `ok` while serving and 503 once shutdown began; other paths 404, other methods
//! on these paths 405.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::net::{TcpListener as MioListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use slab::Slab;

use super::routes::{parse_request_line, route, text, Answer};
use crate::shared::Shared;

/// Longest request head (request line + headers) read; a longer one is answered 431.
pub const MAX_REQUEST: usize = 8 * 1024;
/// Time a client has from connecting to finishing its request head.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Time a client has to take the whole answer once it is ready.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(2);
/// After the answer, how long what the client still sends is read (and dropped)
/// before the close, so that closing does not reset the connection under an answer
/// the client has not read yet.
pub const LINGER: Duration = Duration::from_millis(200);
/// Bytes read and dropped after the answer, at most.
const LINGER_BYTES: usize = 64 * 1024;
/// Connections open at once; one more closes the slowest idle one.
pub const MAX_CONNECTIONS: usize = 256;

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);
/// How long to wait before accepting again after accept failed (EMFILE and friends).
const ACCEPT_RETRY: Duration = Duration::from_millis(50);
/// At most one "connections full" warning per this long.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Binds the metrics listener (done with the other listeners, before anything runs).
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr)
}

/// The running endpoint; [`MetricsServer::stop`] ends it.
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    waker: Arc<Waker>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Starts the endpoint's thread on `listener`.
    pub fn start(listener: TcpListener, shared: Arc<Shared>) -> io::Result<MetricsServer> {
        let addr = listener.local_addr()?;
        listener.set_nonblocking(true)?;
        let mut listener = MioListener::from_std(listener);
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("gc-metrics".into())
            .spawn(move || {
                Endpoint {
                    poll,
                    listener,
                    shared,
                    conns: Slab::with_capacity(MAX_CONNECTIONS),
                    last_warning: None,
                    evicted: 0,
                }
                .run(&flag)
            })?;
        Ok(MetricsServer {
            addr,
            stop,
            waker,
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops the endpoint: closes the listener and every connection (a request not
    /// answered yet gets no answer) and waits for the thread.
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let Some(thread) = self.thread.take() else {
            return;
        };
        if self.waker.wake().is_ok() {
            let _ = thread.join();
        }
        // Otherwise leave the thread be: it sees the flag within a second (the
        // longest poll timeout), or exits with the process.
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where a connection is in its one request.
enum Phase {
    /// Reading the request head, which has until `deadline`.
    Reading { head: Vec<u8> },
    /// Writing the answer; `sent` bytes of `out` are out.
    Writing { out: Vec<u8>, sent: usize },
    /// Answered and half-closed: reading and dropping what the client still sends.
    Lingering { drained: usize },
}

struct Conn {
    stream: TcpStream,
    /// When the connection was accepted (the eviction order).
    accepted: Instant,
    /// When the current phase must be over.
    deadline: Instant,
    phase: Phase,
}

/// What to do with a connection after handling an event.
enum Next {
    Keep,
    Close,
}

struct Endpoint {
    poll: Poll,
    listener: MioListener,
    shared: Arc<Shared>,
    conns: Slab<Conn>,
    last_warning: Option<Instant>,
    /// Connections closed to make room since the last warning.
    evicted: u64,
}

impl Endpoint {
    fn run(mut self, stop: &AtomicBool) {
        let mut events = Events::with_capacity(256);
        let mut accept_blocked = false;
        while !stop.load(Ordering::Acquire) {
            let now = Instant::now();
            let mut timeout = self
                .conns
                .iter()
                .map(|(_, c)| c.deadline.saturating_duration_since(now))
                .min()
                .unwrap_or(Duration::from_secs(1))
                .min(Duration::from_secs(1));
            if accept_blocked {
                timeout = timeout.min(ACCEPT_RETRY);
            }
            if let Err(e) = self.poll.poll(&mut events, Some(timeout)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    log::error!("metrics: poll failed, endpoint stopped: {e}");
                    return;
                }
                continue;
            }
            if stop.load(Ordering::Acquire) {
                return;
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => accept_blocked = false,
                    WAKER => {}
                    Token(i) => {
                        if self.conns.contains(i) && matches!(self.advance(i), Next::Close) {
                            self.close(i);
                        }
                    }
                }
            }
            // Accept after serving the connections that were ready, so a burst of
            // new connections never delays an answer already due.
            if !accept_blocked {
                accept_blocked = self.accept_all();
            }
            self.expire(Instant::now());
        }
    }

    /// Accepts every pending connection; true if accepting failed and must be retried
    /// later (the listener stays readable, but edge-triggered polling will not say so
    /// again).
    fn accept_all(&mut self) -> bool {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => self.admit(stream),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => {}
                Err(e) => {
                    log::warn!("metrics: accept failed: {e}");
                    return true;
                }
            }
        }
    }

    fn admit(&mut self, mut stream: TcpStream) {
        if self.conns.len() >= MAX_CONNECTIONS {
            self.evict_one();
        }
        let now = Instant::now();
        let entry = self.conns.vacant_entry();
        let token = Token(entry.key());
        if let Err(e) = self.poll.registry().register(
            &mut stream,
            token,
            Interest::READABLE | Interest::WRITABLE,
        ) {
            log::warn!("metrics: cannot register a connection: {e}");
            return;
        }
        entry.insert(Conn {
            stream,
            accepted: now,
            deadline: now + REQUEST_TIMEOUT,
            phase: Phase::Reading {
                head: Vec::with_capacity(512),
            },
        });
        // Data may already be there; edge-triggered events for it may have been
        // missed before registration on some platforms, so try once now.
        let key = token.0;
        if matches!(self.advance(key), Next::Close) {
            self.close(key);
        }
    }

    /// Closes the connection that has waited longest for its own request head to
    /// arrive, or if none is still reading, the oldest one.
    fn evict_one(&mut self) {
        let oldest = |reading_only: bool| {
            self.conns
                .iter()
                .filter(|(_, c)| !reading_only || matches!(c.phase, Phase::Reading { .. }))
                .min_by_key(|(_, c)| c.accepted)
                .map(|(i, _)| i)
        };
        let Some(victim) = oldest(true).or_else(|| oldest(false)) else {
            return;
        };
        self.close(victim);
        self.evicted += 1;
        let now = Instant::now();
        if self
            .last_warning
            .is_none_or(|t| now.duration_since(t) >= WARN_EVERY)
        {
            log::warn!(
                "metrics: {MAX_CONNECTIONS} connections open; closed the oldest idle one \
                 to accept a new one ({} closed so far this way since the last warning)",
                self.evicted
            );
            self.last_warning = Some(now);
            self.evicted = 0;
        }
    }

    fn close(&mut self, i: usize) {
        if let Some(mut c) = self.conns.try_remove(i) {
            let _ = self.poll.registry().deregister(&mut c.stream);
        }
    }

    /// Closes the connections whose phase ran out of time.
    fn expire(&mut self, now: Instant) {
        let late: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.deadline <= now)
            .map(|(i, _)| i)
            .collect();
        for i in late {
            self.close(i);
        }
    }

    /// Does everything connection `i` allows without blocking.
    fn advance(&mut self, i: usize) -> Next {
        let shared = self.shared.clone();
        let Some(c) = self.conns.get_mut(i) else {
            return Next::Close;
        };
        loop {
            match &mut c.phase {
                Phase::Reading { head } => {
                    match read_head(&mut c.stream, head) {
                        HeadRead::Complete => {
                            let answer = route(&parse_request_line(head), &shared);
                            c.phase = writing(&answer);
                        }
                        HeadRead::TooLarge => {
                            let answer = text(
                                431,
                                "Request Header Fields Too Large",
                                "request head too large\n",
                            );
                            c.phase = writing(&answer);
                        }
                        HeadRead::Pending => return Next::Keep,
                        HeadRead::Closed => return Next::Close,
                    }
                    c.deadline = Instant::now() + WRITE_TIMEOUT;
                }
                Phase::Writing { out, sent } => {
                    while *sent < out.len() {
                        match c.stream.write(&out[*sent..]) {
                            Ok(0) => return Next::Close,
                            Ok(n) => *sent += n,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Next::Keep,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(_) => return Next::Close,
                        }
                    }
                    if c.stream.shutdown(Shutdown::Write).is_err() {
                        return Next::Close;
                    }
                    c.phase = Phase::Lingering { drained: 0 };
                    c.deadline = Instant::now() + LINGER;
                }
                Phase::Lingering { drained } => {
                    let mut sink = [0u8; 4096];
                    loop {
                        match c.stream.read(&mut sink) {
                            Ok(0) => return Next::Close,
                            Ok(n) => {
                                *drained += n;
                                if *drained >= LINGER_BYTES {
                                    return Next::Close;
                                }
                            }
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Next::Keep,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(_) => return Next::Close,
                        }
                    }
                }
            }
        }
    }
}

/// How far reading a request head got.
enum HeadRead {
    /// The blank line ending the head has arrived.
    Complete,
    /// More than [`MAX_REQUEST`] bytes and no end yet.
    TooLarge,
    /// Nothing more to read for now.
    Pending,
    /// The client closed or the socket failed before a complete head.
    Closed,
}

fn read_head(stream: &mut TcpStream, head: &mut Vec<u8>) -> HeadRead {
    let mut buf = [0u8; 1024];
    loop {
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            return HeadRead::Complete;
        }
        if head.len() > MAX_REQUEST {
            return HeadRead::TooLarge;
        }
        match stream.read(&mut buf) {
            Ok(0) => return HeadRead::Closed,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return HeadRead::Pending,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return HeadRead::Closed,
        }
    }
}

/// The phase that writes `a`: status line, headers, body.
fn writing(a: &Answer) -> Phase {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        a.status,
        a.reason,
        a.content_type,
        a.body.len()
    );
    if let Some(allow) = a.allow {
        out.push_str(&format!("Allow: {allow}\r\n"));
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&a.body);
    Phase::Writing {
        out: bytes,
        sent: 0,
    }
}
