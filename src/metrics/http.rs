//! The `--metrics-listen` endpoint: a deliberately small HTTP/1.1 server on its own
//! threads (std::net, blocking), never on a core loop.
//!
//! One accept thread; each connection gets a short-lived thread (at most
//! [`MAX_ACTIVE`] at once; more are answered 503 at once) that reads one request
//! head of at most [`MAX_REQUEST`] bytes within [`REQUEST_TIMEOUT`], answers it and
//! closes (`Connection: close`). `GET /metrics` renders the registry; `GET /healthz`
//! answers 200 `ok` while serving and 503 once shutdown began; other paths 404, other
//! methods on these paths 405.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::shared::Shared;

/// Longest request head (request line + headers) read.
pub const MAX_REQUEST: usize = 8 * 1024;
/// Time a client has to send its request head, and each write of the answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// Connections handled at once; more get 503 without being read.
pub const MAX_ACTIVE: usize = 16;

/// Binds the metrics listener (done with the other listeners, before anything runs).
pub fn bind(addr: SocketAddr) -> io::Result<TcpListener> {
    TcpListener::bind(addr)
}

/// The running endpoint; [`MetricsServer::stop`] ends it.
pub struct MetricsServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl MetricsServer {
    /// Starts the accept thread on `listener`.
    pub fn start(listener: TcpListener, shared: Arc<Shared>) -> io::Result<MetricsServer> {
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("gc-metrics".into())
            .spawn(move || accept_loop(listener, shared, flag))?;
        Ok(MetricsServer {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and waits for the accept thread (connections being answered
    /// finish on their own threads within [`REQUEST_TIMEOUT`]).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let Some(thread) = self.thread.take() else {
            return;
        };
        // Wake the blocking accept with a connection of our own.
        let mut target = self.addr;
        if target.ip().is_unspecified() {
            target.set_ip(match target {
                SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
                SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
            });
        }
        if TcpStream::connect_timeout(&target, Duration::from_secs(1)).is_ok() {
            let _ = thread.join();
        }
        // Otherwise leave the thread be: it exits at its next connection, or with
        // the process.
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>, stop: Arc<AtomicBool>) {
    let active = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        if stop.load(Ordering::Acquire) {
            return;
        }
        let stream = match conn {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning on the error.
                log::warn!("metrics: accept failed: {e}");
                std::thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        if active.fetch_add(1, Ordering::AcqRel) >= MAX_ACTIVE {
            active.fetch_sub(1, Ordering::AcqRel);
            let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
            // Answered on the accept thread: no waiting for the client here.
            respond(stream, &text(503, "Service Unavailable", "busy\n"), false);
            continue;
        }
        let (shared, guard) = (shared.clone(), ActiveGuard(active.clone()));
        let spawned = std::thread::Builder::new()
            .name("gc-metrics-conn".into())
            .spawn(move || {
                let _guard = guard;
                serve(stream, &shared);
            });
        if let Err(e) = spawned {
            log::warn!("metrics: cannot start a connection thread: {e}");
        }
    }
}

struct ActiveGuard(Arc<AtomicUsize>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// What a request head says, or why it cannot be answered normally.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// Method and path (query string removed).
    Request {
        /// The method.
        method: &'a str,
        /// The path.
        path: &'a str,
    },
    /// Not an HTTP/1.x request line.
    Bad,
}

/// Parses the request line of a head.
pub fn parse_request_line(head: &[u8]) -> Parsed<'_> {
    let line_end = head
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(head.len());
    let Ok(line) = std::str::from_utf8(&head[..line_end]) else {
        return Parsed::Bad;
    };
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Parsed::Bad;
    };
    if method.is_empty() || !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return Parsed::Bad;
    }
    let path = target.split(['?', '#']).next().unwrap_or(target);
    Parsed::Request { method, path }
}

/// An answer: status line, content type, body, and an optional `Allow` header.
#[derive(Debug)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Reason phrase.
    pub reason: &'static str,
    /// Content-Type.
    pub content_type: &'static str,
    /// Body.
    pub body: Vec<u8>,
    /// Methods allowed, for a 405.
    pub allow: Option<&'static str>,
}

const TEXT: &str = "text/plain; charset=utf-8";

fn text(status: u16, reason: &'static str, body: &str) -> Answer {
    Answer {
        status,
        reason,
        content_type: TEXT,
        body: body.as_bytes().to_vec(),
        allow: None,
    }
}

/// The answer to a request.
pub fn route(parsed: &Parsed<'_>, shared: &Shared) -> Answer {
    let (method, path) = match parsed {
        Parsed::Request { method, path } => (*method, *path),
        Parsed::Bad => return text(400, "Bad Request", "bad request\n"),
    };
    if !matches!(path, "/metrics" | "/healthz") {
        return text(404, "Not Found", "not found; try /metrics or /healthz\n");
    }
    if method != "GET" {
        return Answer {
            allow: Some("GET"),
            ..text(405, "Method Not Allowed", "method not allowed; use GET\n")
        };
    }
    if path == "/healthz" {
        return if shared.shutdown.load(Ordering::Acquire) {
            text(503, "Service Unavailable", "shutting down\n")
        } else {
            text(200, "OK", "ok\n")
        };
    }
    Answer {
        status: 200,
        reason: "OK",
        content_type: super::CONTENT_TYPE,
        body: super::render(&shared.registry).into_bytes(),
        allow: None,
    }
}

fn serve(mut stream: TcpStream, shared: &Shared) {
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let _ = stream.set_write_timeout(Some(REQUEST_TIMEOUT));
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        if head.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
        if head.len() > MAX_REQUEST {
            let a = text(
                431,
                "Request Header Fields Too Large",
                "request head too large\n",
            );
            respond(stream, &a, true);
            return;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return; // Too slow: close without an answer.
        }
        match stream.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
    respond(stream, &route(&parse_request_line(&head), shared), true);
}

/// Writes `a` and closes; with `linger`, first reads what the client still sends for
/// a moment (see below).
fn respond(mut stream: TcpStream, a: &Answer, linger: bool) {
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
    if stream.write_all(&bytes).is_err() || !linger {
        return;
    }
    // Half-close, then read what the client may still send (a request body we did
    // not want) for a moment, so closing does not reset the connection under the
    // answer before the client has read it.
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(Duration::from_millis(200)));
    let mut sink = [0u8; 4096];
    let mut drained = 0;
    while drained < 64 * 1024 {
        match stream.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_lines_parse() {
        assert_eq!(
            parse_request_line(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Parsed::Request {
                method: "GET",
                path: "/metrics"
            }
        );
        assert_eq!(
            parse_request_line(b"GET /healthz?verbose=1 HTTP/1.0\r\n\r\n"),
            Parsed::Request {
                method: "GET",
                path: "/healthz"
            }
        );
        assert_eq!(
            parse_request_line(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Parsed::Request {
                method: "POST",
                path: "/metrics"
            }
        );
        assert_eq!(parse_request_line(b"GET /metrics\r\n\r\n"), Parsed::Bad);
        assert_eq!(
            parse_request_line(b"GET metrics HTTP/1.1\r\n\r\n"),
            Parsed::Bad
        );
        assert_eq!(parse_request_line(b"\xff\xfe\r\n\r\n"), Parsed::Bad);
        assert_eq!(
            parse_request_line(b"GET / HTTP/1.1 extra\r\n\r\n"),
            Parsed::Bad
        );
    }
}
